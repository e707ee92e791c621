"""FreeSWITCH 1.11.1 events and reply frames, byte for byte as the recorded transcripts show.

Pure: nothing here touches a socket. ``EventFactory`` stamps the common headers (core uuid,
hostname, dates, sequence); ``channel_event`` lays a channel's headers out in the order the
real switch does (state block, codec block once media is up, ``Caller-*`` profile, the
``Other-Leg-*`` block of a bridged or originated leg, the event's own headers, then the
channel variables). ``encode_json`` / ``encode_plain`` frame an event for one listener.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

if TYPE_CHECKING:
    from robocall.testing.channels import Channel

Headers = list[tuple[str, str]]

HOSTNAME = "vm"
IPV4 = "192.0.2.2"
IPV6 = "fd00::2"

# Where each event is raised in FreeSWITCH's own source (file, function, line), as recorded.
CALLING: dict[str, tuple[str, str, str]] = {
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_PROGRESS": (
        "switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3507"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3848"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2949"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2972"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "954"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3447"),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c", "switch_core_session_reporting_state", "943"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1588"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "678"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1649"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2023"),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", "1482"),
    "RECORD_STOP": ("switch_ivr_async.c", "send_record_stop_event", "1241"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1569"),
    "SHUTDOWN": ("switch_core.c", "switch_core_destroy", "3033"),
}

# Events whose Hangup-Cause also sits before the state block (it follows Answer-State in all).
_CAUSE_FIRST = {"CHANNEL_HANGUP_COMPLETE"}
# Events that carry no channel variables at all (DTMF, as recorded).
_NO_VARIABLES = {"DTMF"}
_CODEC = (
    ("Channel-Read-Codec-Name", "PCMU"), ("Channel-Read-Codec-Rate", "8000"),
    ("Channel-Read-Codec-Bit-Rate", "64000"), ("Channel-Write-Codec-Name", "PCMU"),
    ("Channel-Write-Codec-Rate", "8000"), ("Channel-Write-Codec-Bit-Rate", "64000"),
)


@dataclass
class Event:
    """One event: ordered headers and an optional body (BACKGROUND_JOB's result)."""

    name: str
    headers: Headers
    body: str = ""
    unique_id: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of a header, as FreeSWITCH's own lookup returns it."""
        for name, value in self.headers:
            if name == key:
                return value
        return default

    def get_ignoring_case(self, key: str) -> str | None:
        """The first value of a header named ``key`` without case (switch_event_get_header)."""
        folded = key.lower()
        for name, value in self.headers:
            if name.lower() == folded:
                return value
        return None


class Clock(Protocol):
    def __call__(self) -> float: ...


@dataclass
class EventFactory:
    """Stamps the headers every FreeSWITCH event starts with; owns the Event-Sequence counter."""

    clock: Callable[[], float] = time.time
    core_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    sequence: int = 0

    def micros(self) -> int:
        """The switch's clock in microseconds, as in Event-Date-Timestamp."""
        return int(self.clock() * 1_000_000)

    def base(self, name: str) -> Headers:
        """Event-Name through Event-Sequence, as every recorded event has them."""
        self.sequence += 1
        now = self.clock()
        local = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
        gmt = datetime.fromtimestamp(now, tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        source_file, function, line = CALLING.get(
            name, ("switch_event.c", "switch_event_fire", "0"))
        return [
            ("Event-Name", name), ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", HOSTNAME), ("FreeSWITCH-Switchname", HOSTNAME),
            ("FreeSWITCH-IPv4", IPV4), ("FreeSWITCH-IPv6", IPV6),
            ("Event-Date-Local", local), ("Event-Date-GMT", gmt),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", source_file), ("Event-Calling-Function", function),
            ("Event-Calling-Line-Number", line), ("Event-Sequence", str(self.sequence)),
        ]

    def background_job(self, job_uuid: str, command: str, argument: str, result: str) -> Event:
        """BACKGROUND_JOB carrying an api command's result as its body."""
        headers = self.base("BACKGROUND_JOB") + [
            ("Job-UUID", job_uuid), ("Job-Command", command), ("Job-Command-Arg", argument),
        ]
        return Event("BACKGROUND_JOB", headers, body=result)

    def heartbeat(self, *, idle_cpu: float, sessions: int, max_sessions: int,
                  sessions_per_second: int, since_startup: int, uptime_ms: int) -> Event:
        """HEARTBEAT, as FreeSWITCH fires it every ``event-heartbeat-interval`` seconds."""
        headers = self.base("HEARTBEAT") + [
            ("Event-Info", "System Ready"), ("Up-Time", f"0 years, 0 days, {uptime_ms // 1000} "
                                                         "seconds"),
            ("FreeSWITCH-Version", "1.11.1-release+git~20260526T204126Z~c2c59645f6~64bit"),
            ("Uptime-msec", str(uptime_ms)), ("Session-Count", str(sessions)),
            ("Max-Sessions", str(max_sessions)), ("Session-Per-Sec", str(sessions_per_second)),
            ("Session-Per-Sec-Last", "0"), ("Session-Per-Sec-Max", str(sessions_per_second)),
            ("Session-Per-Sec-FiveMin", "0"), ("Session-Since-Startup", str(since_startup)),
            ("Session-Peak-Max", str(sessions)), ("Session-Peak-FiveMin", str(sessions)),
            ("Idle-CPU", f"{idle_cpu:.6f}"),
        ]
        return Event("HEARTBEAT", headers)

    def shutdown(self) -> Event:
        """SHUTDOWN, fired once when the switch goes down."""
        headers = self.base("SHUTDOWN") + [("Event-Info", "System Shutting Down")]
        return Event("SHUTDOWN", headers)

    def channel_event(self, name: str, channel: Channel, extra: Iterable[tuple[str, str]] = (),
                      before_state: Iterable[tuple[str, str]] = ()) -> Event:
        """A channel event in the real switch's header order; ``extra`` are its own headers."""
        headers = self.base(name) + list(before_state)
        cause = channel.hangup_cause if channel.answer_state == "hangup" else None
        if cause and name in _CAUSE_FIRST:
            headers.append(("Hangup-Cause", cause))
        headers += [
            ("Channel-State", channel.state), ("Channel-Call-State", channel.call_state),
            ("Channel-State-Number", str(channel.state_number)),
            ("Channel-Name", channel.name), ("Unique-ID", channel.uuid),
            ("Call-Direction", "outbound"), ("Presence-Call-Direction", "outbound"),
            ("Channel-HIT-Dialplan", "true" if channel.hit_dialplan else "false"),
            ("Channel-Call-UUID", channel.call_uuid), ("Answer-State", channel.answer_state),
        ]
        if cause:
            headers.append(("Hangup-Cause", cause))
        if channel.media_up:
            headers += _CODEC
        headers += caller_profile(channel)
        if channel.other_type:
            headers += other_leg(channel)
        headers += list(extra)
        if name not in _NO_VARIABLES:
            headers += [(f"variable_{k}", v) for k, v in channel.variables.items()]
        return Event(name, headers, unique_id=channel.uuid)


def caller_profile(channel: Channel) -> Headers:
    """The ``Caller-*`` block; its shape follows the leg's life as the recordings show."""
    p = channel.profile
    headers: Headers = [("Caller-Direction", "outbound"),
                        ("Caller-Logical-Direction", p.logical_direction)]
    if p.cid_flipped:
        # After the originate completes, the A leg's caller and callee ids swap (cid flip).
        headers += [("Caller-Caller-ID-Name", "Outbound Call"),
                    ("Caller-Caller-ID-Number", p.destination),
                    ("Caller-Orig-Caller-ID-Number", p.caller_id_number)]
        if p.callee_id_name:
            # Set once a bridged callee rang or answered (esl-transfer-answered/noanswer.txt).
            headers += [("Caller-Callee-ID-Name", p.callee_id_name),
                        ("Caller-Callee-ID-Number", p.destination)]
        else:
            headers.append(("Caller-Callee-ID-Number", p.caller_id_number))
    else:
        if p.caller_id_name:
            headers.append(("Caller-Caller-ID-Name", p.caller_id_name))
        headers += [("Caller-Caller-ID-Number", p.caller_id_number),
                    ("Caller-Orig-Caller-ID-Number", p.caller_id_number),
                    ("Caller-Callee-ID-Name", "Outbound Call"),
                    ("Caller-Callee-ID-Number", p.destination)]
    if channel.network_addr:
        headers.append(("Caller-Network-Addr", "127.0.0.1"))
    t = channel.times
    headers += [
        ("Caller-ANI", p.caller_id_number), ("Caller-Destination-Number", p.destination),
        ("Caller-Unique-ID", channel.uuid), ("Caller-Source", "src/switch_ivr_originate.c"),
        ("Caller-Context", "default"), ("Caller-Channel-Name", channel.name),
        ("Caller-Profile-Index", "1"), ("Caller-Profile-Created-Time", str(t.created)),
        ("Caller-Channel-Created-Time", str(t.created)),
        ("Caller-Channel-Answered-Time", str(t.answered)),
        ("Caller-Channel-Progress-Time", str(t.progress)),
        ("Caller-Channel-Progress-Media-Time", "0"),
        ("Caller-Channel-Hangup-Time", str(t.hangup)),
        ("Caller-Channel-Transfer-Time", "0"), ("Caller-Channel-Resurrect-Time", "0"),
        ("Caller-Channel-Bridged-Time", str(t.bridged)),
        ("Caller-Channel-Last-Hold", "0"), ("Caller-Channel-Hold-Accum", "0"),
        ("Caller-Screen-Bit", "true"), ("Caller-Privacy-Hide-Name", "false"),
        ("Caller-Privacy-Hide-Number", "false"),
    ]
    return headers


def other_leg(channel: Channel) -> Headers:
    """``Other-Type`` and the ``Other-Leg-*`` block naming the leg this one was bridged with."""
    other = channel.other
    headers: Headers = [("Other-Type", channel.other_type or "")]
    if other is None:
        return headers
    p = other.profile
    t = other.times
    headers += [
        ("Other-Leg-Direction", "outbound"),
        ("Other-Leg-Logical-Direction", p.logical_direction),
        ("Other-Leg-Caller-ID-Name", p.caller_id_name or "Outbound Call"),
        ("Other-Leg-Caller-ID-Number", p.caller_id_number),
        ("Other-Leg-Orig-Caller-ID-Number", p.caller_id_number),
    ]
    # A B leg's Other-Leg block is the A leg's profile as it was when B was created; an A leg
    # has a callee name only once a bridged callee rang (see caller_profile).
    if other.kind == "bleg" or channel.other_callee_name:
        headers.append(("Other-Leg-Callee-ID-Name", "Outbound Call"))
    headers += [
        ("Other-Leg-Callee-ID-Number", p.destination),
        ("Other-Leg-Network-Addr", "127.0.0.1"), ("Other-Leg-ANI", p.caller_id_number),
        ("Other-Leg-Destination-Number", p.destination), ("Other-Leg-Unique-ID", other.uuid),
        ("Other-Leg-Source", "src/switch_ivr_originate.c"), ("Other-Leg-Context", "default"),
        ("Other-Leg-Channel-Name", other.name),
        ("Other-Leg-Profile-Created-Time", str(t.created)),
        ("Other-Leg-Channel-Created-Time", str(t.created)),
        ("Other-Leg-Channel-Answered-Time", str(t.answered)),
        ("Other-Leg-Channel-Progress-Time", str(t.progress)),
        ("Other-Leg-Channel-Progress-Media-Time", "0"),
        ("Other-Leg-Channel-Hangup-Time", str(t.hangup)),
        ("Other-Leg-Channel-Transfer-Time", "0"), ("Other-Leg-Channel-Resurrect-Time", "0"),
        ("Other-Leg-Channel-Bridged-Time", str(t.bridged)),
        ("Other-Leg-Channel-Last-Hold", "0"), ("Other-Leg-Channel-Hold-Accum", "0"),
        ("Other-Leg-Screen-Bit", "true"), ("Other-Leg-Privacy-Hide-Name", "false"),
        ("Other-Leg-Privacy-Hide-Number", "false"),
    ]
    return headers


# --- framing ----------------------------------------------------------------------------------


def encode_json(event: Event) -> bytes:
    """``text/event-json``: Content-Length before Content-Type, compact JSON, body as ``_body``."""
    pairs = list(event.headers)
    if event.body:
        pairs += [("Content-Length", str(len(event.body.encode()))), ("_body", event.body)]
    # Written pair by pair: FreeSWITCH repeats a key when the event has it twice
    # (Hangup-Cause in CHANNEL_HANGUP_COMPLETE), and so does this.
    payload = ("{" + ",".join(f"{_json(k)}:{_json(v)}" for k, v in pairs) + "}").encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(payload) + payload


def _json(value: str | list[str]) -> str:
    # A multi-valued variable is a JSON array (variable_originated_legs), compact like the rest.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def encode_plain(event: Event) -> bytes:
    """``text/event-plain``: URL-encoded ``Name: value`` lines, then an inner body if any."""
    lines = [f"{key}: {_url(value)}" for key, value in event.headers]
    if event.body:
        body = event.body.encode()
        text = ("\n".join(lines) + f"\nContent-Length: {len(body)}\n\n").encode() + body
    else:
        text = ("\n".join(lines) + "\n\n").encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(text) + text


def _url(value: str) -> str:
    # FreeSWITCH's switch_url_encode keeps these unreserved marks as they are (see the recordings:
    # "Thu,%2026%20Nov", "sofia/internal/1000%40127.0.0.1%3A5070", "park()").
    return quote(value, safe="-_.!~*'(),/$")


def auth_request() -> bytes:
    """The greeting sent the moment a connection is accepted."""
    return b"Content-Type: auth/request\n\n"


def command_reply(text: str, job_uuid: str | None = None) -> bytes:
    """``command/reply``; a bgapi reply also carries its Job-UUID header."""
    frame = f"Content-Type: command/reply\nReply-Text: {text}\n"
    if job_uuid:
        frame += f"Job-UUID: {job_uuid}\n"
    return (frame + "\n").encode()


def api_response(body: str) -> bytes:
    """``api/response``: Content-Type before Content-Length, the reverse of events."""
    data = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def disconnect_notice(text: str) -> bytes:
    """``text/disconnect-notice``, sent before the switch closes a connection."""
    data = text.encode()
    return b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(data) + data


EXIT_NOTICE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
SHUTDOWN_NOTICE = "The system is being shut down.\n"
