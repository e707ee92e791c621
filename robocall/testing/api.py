"""The ``api`` / ``bgapi`` commands the fake switch answers, with FreeSWITCH 1.11.1's texts.

Each handler takes the switch and the command's argument and returns the response body.
``originate`` is special: it reports its result part-way through the call's life (see
``Switch.originate``), so ``run_api`` runs it with a callback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

import gevent
from gevent.event import AsyncResult

from robocall.testing.channels import Channel
from robocall.testing.switch import Switch

NO_CHANNEL = "-ERR No such channel!\n"
VERSION = ("FreeSWITCH Version 1.11.1-release+git~20260526T204126Z~c2c59645f6~64bit "
           "(git c2c5964 2026-05-26 20:41:26Z 64bit)\n")


def run_api(switch: Switch, command: str, argument: str,
            on_result: Callable[[str], None] | None = None) -> str:
    """Run one api command to its result (blocking the caller, as ``api`` does)."""
    if command == "originate":
        result: AsyncResult[str] = AsyncResult()

        def report(text: str) -> None:
            result.set(text)
            if on_result is not None:
                on_result(text)

        switch.spawn(switch.originate, argument, report)
        return str(result.get())
    handler = HANDLERS.get(command)
    text = handler(switch, argument) if handler else f"-ERR {command} Command not found!\n"
    if on_result is not None:
        on_result(text)
    return text


def status(switch: Switch, argument: str) -> str:
    """``status``: uptime, version, session counters and limits."""
    up = time.monotonic() - switch.started
    days, rest = divmod(int(up), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    millis = int((up - int(up)) * 1000)
    live = len(switch.channels)
    # A scaled switch's second is scaled too (its budget refills every scripted second): the
    # budget is told per real second, so a client that paces by it is paced right.
    per_second = max(1, round(switch.sessions_per_second / switch.time_scale))
    return (
        f"UP 0 years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, "
        f"{millis} milliseconds, 0 microseconds\n"
        "FreeSWITCH (Version 1.11.1-release git c2c5964 2026-05-26 20:41:26Z 64bit) is ready\n"
        f"{switch.session_count} session(s) since startup\n"
        f"{live} session(s) - peak {switch.peak_sessions}, last 5min {switch.peak_sessions} \n"
        f"0 session(s) per Sec out of max {per_second}, peak 0, last 5min 0 \n"
        f"{switch.max_sessions} session(s) max\n"
        "min idle cpu 0.00/95.37\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


def uptime(switch: Switch, argument: str) -> str:
    """``uptime``: whole seconds since start."""
    return f"{int(time.monotonic() - switch.started)}\n"


def msleep(switch: Switch, argument: str) -> str:
    """``msleep N``: sleep N ms (scaled like every scripted duration), then ``+OK``."""
    gevent.sleep(switch.seconds(int(argument) if argument.strip().isdigit() else 0))
    return "+OK"


def uuid_getvar(switch: Switch, argument: str) -> str:
    """``uuid_getvar <uuid> <var>``: the value, or ``_undef_``."""
    parts = argument.split()
    channel = switch.find(parts[0]) if parts else None
    if channel is None or len(parts) < 2:
        return NO_CHANNEL
    return channel.variables.get(parts[1], "_undef_")


def uuid_setvar(switch: Switch, argument: str) -> str:
    """``uuid_setvar <uuid> <var> [value]``."""
    parts = argument.split(" ", 2)
    channel = switch.find(parts[0]) if parts else None
    if channel is None or len(parts) < 2:
        return NO_CHANNEL
    channel.set_variable(parts[1], parts[2] if len(parts) > 2 else None)
    return "+OK\n"


def uuid_exists(switch: Switch, argument: str) -> str:
    """``uuid_exists <uuid>``: ``true`` / ``false``."""
    return "true" if switch.find(argument.strip()) else "false"


def uuid_dump(switch: Switch, argument: str) -> str:
    """``uuid_dump <uuid> [json]``: the channel's headers and variables, as its events carry
    them (Event-Name CHANNEL_DATA); ``Name: value`` lines without ``json``."""
    parts = argument.split()
    channel = switch.find(parts[0]) if parts else None
    if channel is None:
        return NO_CHANNEL
    headers = switch.factory.channel_event("CHANNEL_DATA", channel).headers
    if parts[1:] == ["json"]:
        return json.dumps(dict(headers), separators=(",", ":"))
    return "".join(f"{name}: {value}\n" for name, value in headers)


def uuid_kill(switch: Switch, argument: str) -> str:
    """``uuid_kill <uuid> [cause]``."""
    parts = argument.split()
    channel = switch.find(parts[0]) if parts else None
    if channel is None:
        return NO_CHANNEL
    switch.kill(channel, parts[1] if len(parts) > 1 else "NORMAL_CLEARING")
    return "+OK\n"


def uuid_record(switch: Switch, argument: str) -> str:
    """``uuid_record <uuid> start|stop <path> [<limit>] [{vars}]``: only read-leg recordings are
    written with audio (the callee's script, robocall.testing.voice); the texts are 1.11.1's.

    As there: the ``{vars}`` block is URL-decoded and read as this recording's own variables;
    a path already being recorded is not recorded twice (``+OK``, "Already recording" in the
    switch's log); the file and RECORD_START come before the reply."""
    from urllib.parse import unquote

    from robocall.testing.callees import split_variables
    from robocall.testing.voice import start_read_leg_recording

    parts = argument.split(" ", 4)
    if len(parts) < 3:
        return ("-USAGE: <uuid> [start|stop|mask|unmask|pause|resume] <path> [<limit>] "
                "[<recording_vars>]\n")
    channel = switch.find(parts[0])
    if channel is None:
        return "-ERR Cannot locate session!\n"
    action, path = parts[1], parts[2]
    if action == "start":
        if not channel.media_up:
            return "-ERR Cannot record session!\n"
        if path in channel.read_recordings:
            return "+OK Success\n"
        limit_ms = int(parts[3]) * 1000 if len(parts) > 3 and parts[3].isdigit() else 3_600_000
        if limit_ms <= 0:
            limit_ms = 3_600_000
        block = unquote(parts[4]) if len(parts) > 4 else ""
        variables = split_variables(block[1:-1]) if block.startswith("{") else {}
        start_read_leg_recording(channel, path, limit_ms, variables)
        return "+OK Success\n"
    if action == "stop":
        found = channel.read_recordings.pop(path, None)
        if found is None:
            return "-ERR Cannot stop record session!\n"
        found.stopped.set()
        return "+OK Success\n"
    return "-ERR Cannot record session!\n"


def uuid_break(switch: Switch, argument: str) -> str:
    """``uuid_break <uuid> [all]``: the playback playing now stops (PLAYBACK_STOP, break)."""
    parts = argument.split()
    channel = switch.find(parts[0]) if parts else None
    if channel is None:
        return NO_CHANNEL
    channel.breaking.set()
    return "+OK\n"


def hupall(switch: Switch, argument: str) -> str:
    """``hupall <cause> [<var> <value>]``: exact match on a channel variable, answered or not."""
    parts = argument.split()
    cause = parts[0] if parts else "NORMAL_CLEARING"
    if len(parts) >= 3:
        name, value = parts[1], parts[2]
        matches = [c for c in switch.channels.values() if c.variables.get(name) == value]
        text = f"+OK hangup all channels matching [{name}]=[{value}] with cause: {cause}\n"
    else:
        matches = list(switch.channels.values())
        text = f"+OK hangup all channels with cause {cause}\n"
    for channel in matches:
        switch.kill(channel, cause)
    return text


def module_exists(switch: Switch, argument: str) -> str:
    """``module_exists <mod_name>``: ``true`` / ``false`` (no newline, as FreeSWITCH answers)."""
    return "true" if argument.strip() in switch.modules else "false"


def version(switch: Switch, argument: str) -> str:
    """``version``."""
    return VERSION


def show(switch: Switch, argument: str) -> str:
    """``show channels|calls [count] [like X] [as json]``."""
    words = argument.split()
    as_json = words[-2:] == ["as", "json"]
    if as_json:
        words = words[:-2]
    what = words[0] if words else ""
    if what not in ("channels", "calls"):
        return f"-USAGE: show {argument}\n"
    rows = [channel_row(c) for c in switch.channels.values()]
    if what == "calls":
        rows = call_rows(switch)
    if len(words) >= 3 and words[1] == "like":
        needle = words[2]
        rows = [r for r in rows if any(needle in r.get(k, "") for k in _LIKE_COLUMNS)]
    if len(words) >= 2 and words[1] == "count":
        if as_json:
            return json.dumps({"row_count": len(rows), "rows": []}, separators=(",", ":"))
        return f"\n{len(rows)} total.\n"
    if not as_json:
        return _plain_table(rows)
    if not rows:
        return '{"row_count": 0}\n'
    return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))


_LIKE_COLUMNS = ("uuid", "name", "cid_name", "cid_num", "presence_data", "accountcode")


def channel_row(channel: Channel) -> dict[str, str]:
    """One row of ``show channels as json``, with the recorded columns and their quirks."""
    created = int(channel.times.created / 1_000_000)
    executing = channel.hit_dialplan
    media = channel.media_up
    p = channel.profile
    flipped = p.cid_flipped
    bridged = channel.bridged_to is not None or channel.kind == "bleg"
    return {
        "uuid": channel.uuid, "direction": "outbound",
        "created": datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S"),
        "created_epoch": str(created), "name": channel.name, "state": channel.state,
        "cid_name": "Outbound Call" if flipped or channel.kind == "bleg" else "",
        "cid_num": p.destination if flipped else p.caller_id_number,
        "ip_addr": "127.0.0.1" if channel.kind == "bleg" else "", "dest": p.destination,
        "application": channel.application if executing else "",
        "application_data": channel.application_data if executing else "",
        "dialplan": "", "context": "default",
        "read_codec": "PCMU" if media else "", "read_rate": "8000" if media else "",
        "read_bit_rate": "64000" if media else "", "write_codec": "PCMU" if media else "",
        "write_rate": "8000" if media else "", "write_bit_rate": "64000" if media else "",
        "secure": "", "hostname": "vm", "presence_id": "", "presence_data": "",
        # The column is filled when the channel runs its first application (esl-line-counting).
        "accountcode": channel.accountcode_column, "callstate": channel.call_state,
        "callee_name": "Outbound Call" if bridged or not flipped else "",
        "callee_num": p.caller_id_number if flipped and not bridged else p.destination,
        "callee_direction": ("SEND" if bridged else "RECV") if executing else "",
        "call_uuid": channel.call_uuid,
        "sent_callee_name": "Outbound Call" if bridged else "",
        "sent_callee_num": (p.caller_id_number if channel.kind == "bleg" else p.destination)
        if bridged else "",
        "initial_cid_name": "Outbound Call" if channel.kind == "bleg" else "",
        "initial_cid_num": p.caller_id_number,
        "initial_ip_addr": "127.0.0.1" if channel.kind == "bleg" else "",
        "initial_dest": p.destination, "initial_dialplan": "", "initial_context": "default",
    }


_CALL_COLUMNS = ("uuid", "direction", "created", "created_epoch", "name", "state", "cid_name",
                 "cid_num", "ip_addr", "dest", "presence_id", "presence_data", "accountcode",
                 "callstate", "callee_name", "callee_num", "callee_direction", "call_uuid",
                 "hostname", "sent_callee_name", "sent_callee_num")
_B_COLUMNS = ("uuid", "direction", "created", "created_epoch", "name", "state", "cid_name",
              "cid_num", "ip_addr", "dest", "presence_id", "presence_data", "accountcode",
              "callstate", "callee_name", "callee_num", "callee_direction",
              "sent_callee_name", "sent_callee_num")


def call_rows(switch: Switch) -> list[dict[str, str]]:
    """``show calls``: a bridged pair is one row with ``b_*`` columns; others stand alone."""
    rows = []
    for channel in switch.channels.values():
        if channel.kind == "bleg" and channel.other is not None and \
                channel.other.bridged_to is channel:
            continue
        a_row = channel_row(channel)
        row = {k: a_row[k] for k in _CALL_COLUMNS}
        b_leg = channel.bridged_to
        b_row = channel_row(b_leg) if b_leg is not None else {}
        for key in _B_COLUMNS:
            row[f"b_{key}"] = b_row.get(key, "")
        row["call_created_epoch"] = a_row["created_epoch"] if b_leg else ""
        rows.append(row)
    return rows


def _plain_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "\n0 total.\n"
    header = ",".join(rows[0])
    lines = [",".join(r.values()) for r in rows]
    return header + "\n" + "\n".join(lines) + f"\n\n{len(rows)} total.\n"


HANDLERS: dict[str, Callable[[Switch, str], str]] = {
    "status": status, "uptime": uptime, "msleep": msleep, "uuid_getvar": uuid_getvar,
    "uuid_setvar": uuid_setvar, "uuid_exists": uuid_exists, "uuid_kill": uuid_kill,
    "uuid_dump": uuid_dump,
    "hupall": hupall, "uuid_record": uuid_record, "uuid_break": uuid_break,
    "version": version, "show": show, "module_exists": module_exists,
}
