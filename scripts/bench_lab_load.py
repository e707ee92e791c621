"""Benchmark: robocall against a bare ESL client on a real FreeSWITCH, at load, in the same run.

For each scenario both clients dial the same number of calls at the same lines and pace, one
after the other, each in a process of its own, while an independent sampler (a third Event
Socket connection, in this process) watches the switch:

- ``robocall``: the whole service as ``robocall serve`` runs it (API over HTTP, dispatcher,
  runner, PostgreSQL store), one request of ``calls`` destinations with a one-step flow (play
  the message, then hang up);
- ``bare``: ~150 lines of Python below (``bare_client``): ``bgapi originate ... &park()``, on
  CHANNEL_PARK ``sendmsg execute playback``, on its end ``sendmsg hangup``; as fast as lines and
  pace allow. It plays one file (the message rendered once), so with ``{{name}}`` it is the bar
  robocall's per-call renders must reach.

Printed, one JSON object per scenario, each client beside the other:
``calls_per_second`` (all calls final / wall time), ``cpu_ms_per_call`` (the client process's
user+system CPU over the run / calls), ``first_audio_ms`` p50/p99/max (the switch's own
timestamps: a leg's CHANNEL_ANSWER to its first PLAYBACK_START), ``answered_silent`` (answered
legs that never started a playback), ``peak_legs`` against ``lines`` (the sampler's count of
the run's robo legs), ``channels_left`` (robo legs still up ``--settle`` seconds after the
client said it was done; they are then hung up), and the final statuses with their causes
(robocall: from GET /v1/status; ``ended_by_robocall`` and ``connection_lost`` count the calls
it gave up), robocall's store statements by kind and per call (round trips to the database),
and ``throttle``: robocall's dial-rate factor over the run and the switch's signals behind it.
``--profile FILE`` samples where robocall's CPU goes (``CpuSampler``) and writes it as JSON.
``BENCH_CHAIN=1`` adds robocall's ``chain`` (``scripts/chain_trace.py``): a freed line's way to
its next leg, stage by stage (line freed -> claim -> its statements -> gate -> CHANNEL_CREATE).

Scenarios (``--scenario``, repeatable; ``--calls``/``--lines`` override for a smoke run):
``smoke`` (50 calls, 50 lines, 2 s message), ``lines200`` (1,000 calls, 2 s message),
``names200`` (1,000 calls, a different ``{{name}}`` per call), ``ramp500`` (1,500 calls, 20 s
message), ``overload1000`` (2,000 calls at 1,000 lines, 20 s message). Bounded: every client
run stops after ``--max-seconds``; loopback only.

    . /work/fslab/lab1/lab.env   # ROBOCALL_LAB_ESL=127.0.0.1:8021:PASSWORD
    .venv/bin/python scripts/bench_lab_load.py --scenario smoke
    .venv/bin/python scripts/bench_lab_load.py --scenario lines200 --scenario names200 \\
        --scenario ramp500 --scenario overload1000

The callee (``--callee``, default ``+6580000003``: answers at once, 40 s of silence) is one of
the lab's scripted callees (docs/lab.md), reached through ``--dial-template``.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHORT = "Hello, this is the clinic. Your appointment is confirmed."
NAMED = "Hello {{name}}, this is the clinic. Your appointment is confirmed."
LONG = (
    "Hello, this is the clinic calling about your appointment next week. Please arrive fifteen "
    "minutes early and bring your insurance card and a list of the medicines you take. If you "
    "need to change the time, call us during office hours, Monday to Friday, from eight in the "
    "morning to six in the evening. Thank you, and have a good day."
)
NAMES = ("Alex", "Binh", "Chandra", "Dewi", "Eko", "Farah", "Gita", "Hoang", "Indra", "Jun")
SAMPLED = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "PLAYBACK_START", "CHANNEL_HANGUP_COMPLETE")
FAKE = """
import sys
from gevent import monkey; monkey.patch_all()
import gevent
from robocall.testing import Callee, CalleeBook, FakeSwitch
callee = Callee(answer_after_ms=20, ring=False, hangup_after_ms=40_000)
fake = FakeSwitch(CalleeBook({}, callee), sessions_per_second=100000, max_sessions=100000).start()
print(fake.port, flush=True)
gevent.wait()
"""
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


@dataclass(frozen=True)
class Scenario:
    name: str
    calls: int
    lines: int
    text: str
    names: bool = False


SCENARIOS = {
    "smoke": Scenario("smoke", 50, 50, SHORT),
    "lines200": Scenario("lines200", 1000, 200, SHORT),
    "names200": Scenario("names200", 1000, 200, NAMED, names=True),
    "ramp500": Scenario("ramp500", 1500, 500, LONG),
    "overload1000": Scenario("overload1000", 2000, 1000, LONG),
}


UNFILTERED = "robocall-unfiltered"


@dataclass(frozen=True)
class Spec:
    """What a client child process needs (passed as JSON)."""

    client: str
    tag: str
    calls: int
    lines: int
    cps: float
    text: str
    names: bool
    audio: str
    esl: str
    dial_template: str
    callee: str
    data_dir: str
    database_url: str
    max_seconds: float
    profile: str = ""


# --- the bare client (a child process; plain sockets, no gevent, no robocall) -------------------


def bare_client(spec: Spec) -> dict[str, Any]:
    """Dial ``spec.calls`` calls: originate, play on park, hang up after the playback."""
    import orjson

    host, port, password = spec.esl.split(":", 2)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()

    def frames() -> list[tuple[dict[str, str], bytes]]:
        out = []
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                return out
            headers = dict(line.split(": ", 1) for line in buffer[:end].decode().split("\n"))
            length = int(headers.get("Content-Length", 0))
            if len(buffer) < end + 2 + length:
                return out
            out.append((headers, bytes(buffer[end + 2:end + 2 + length])))
            del buffer[:end + 2 + length]

    def expect_reply() -> None:
        while True:
            got = frames()
            if got:
                return
            buffer.extend(sock.recv(65536))

    expect_reply()  # auth/request
    sock.sendall(f"auth {password}\n\n".encode())
    expect_reply()
    sock.sendall(b"event json CHANNEL_CREATE CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE "
                 b"CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB\n\n")
    expect_reply()
    sock.settimeout(0.005)
    calls: dict[str, dict[str, Any]] = {}
    jobs: dict[str, str] = {}
    causes: dict[str, int] = {}
    tokens, stamp, dialled, live, finished = 1.0, time.monotonic(), 0, 0, 0
    deadline = time.monotonic() + spec.max_seconds
    number = spec.callee
    while finished < spec.calls and time.monotonic() < deadline:
        now = time.monotonic()
        tokens = min(max(1.0, spec.cps / 5), tokens + (now - stamp) * spec.cps)
        stamp = now
        out = []
        while dialled < spec.calls and live < spec.lines and tokens >= 1:
            leg, job = secrets.token_hex(16), secrets.token_hex(16)
            calls[leg] = {"created": False, "done": False, "played": False}
            jobs[job] = leg
            dial = spec.dial_template.format(number=number)
            out.append(f"bgapi originate {{origination_uuid={leg},robocall_request_id={spec.tag},"
                       f"origination_caller_id_number=6582674904,originate_timeout=30,"
                       f"ignore_early_media=true}}{dial} &park()\nJob-UUID: {job}\n\n")
            dialled, live, tokens = dialled + 1, live + 1, tokens - 1
        try:
            data = sock.recv(262144)
        except TimeoutError:
            data = b""
        buffer.extend(data)
        for headers, body in frames():
            if headers.get("Content-Type") != "text/event-json":
                continue
            event = orjson.loads(body)
            name = event.get("Event-Name")
            if name == "BACKGROUND_JOB":
                leg = jobs.pop(event.get("Job-UUID", ""), "")
                call = calls.get(leg)
                if call and not call["done"] and not event.get("_body", "").startswith("+OK") \
                        and not call["created"]:
                    call["done"], live, finished = True, live - 1, finished + 1
                    cause = event.get("_body", "-ERR ?").split()[-1]
                    causes[cause] = causes.get(cause, 0) + 1
                continue
            leg = event.get("Unique-ID", "")
            call = calls.get(leg)
            if call is None or call["done"]:
                continue
            if name == "CHANNEL_CREATE":
                call["created"] = True
            elif name == "CHANNEL_PARK" and not call["played"]:
                call["played"] = True
                out.append(f"sendmsg {leg}\ncall-command: execute\nexecute-app-name: playback\n"
                           f"execute-app-arg: {spec.audio}\nevent-lock: true\n\n")
            elif name == "CHANNEL_EXECUTE_COMPLETE" and event.get("Application") == "playback":
                out.append(f"sendmsg {leg}\ncall-command: hangup\n"
                           "hangup-cause: NORMAL_CLEARING\n\n")
            elif name == "CHANNEL_HANGUP_COMPLETE":
                call["done"], live, finished = True, live - 1, finished + 1
                cause = event.get("Hangup-Cause", "UNKNOWN")
                causes[cause] = causes.get(cause, 0) + 1
        if out:
            sock.settimeout(None)
            sock.sendall("".join(out).encode())
            sock.settimeout(0.005)
    sock.close()
    return {"dialled": dialled, "final": finished, "causes": causes}


# --- robocall (a child process: the whole service) ----------------------------------------------


def robocall_client(spec: Spec, go: Any) -> dict[str, Any]:
    """Run robocall serve's objects, post one request at ``go()``, wait until it completes."""
    from gevent import monkey

    monkey.patch_all()
    import gevent.event
    import requests

    from robocall import bootstrap
    from robocall.api.auth import API_KEY_HEADER
    from robocall.api.server import make_server
    from robocall.config import Settings
    from robocall.tts.voices import available_languages

    host, port, password = spec.esl.split(":", 2)
    settings = Settings(
        data_dir=Path(spec.data_dir), database_url=spec.database_url,
        switch=f"esl://:{password}@{host}:{port}", dial_template=spec.dial_template,
        originate_timeout_seconds=30, switch_cps=spec.cps,
        # only when asked: the script also measures a robocall from before the setting
        **({"event_filters": False} if spec.client == UNFILTERED else {}),
    )
    chain = None
    if os.environ.get("BENCH_CHAIN"):  # the freed line -> next leg chain, stage by stage
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import chain_trace as chain

        from robocall.dispatch.dispatcher import Dispatcher
        from robocall.dispatch.sending import SendGate

        chain.install(Dispatcher, SendGate)
    service = bootstrap.build_service(settings, languages=available_languages())
    # Events the run delivered to robocall (counted from go, by name): what the filters keep.
    received: collections.Counter[str] = collections.Counter()
    counting_events: list[bool] = []
    service.pool.first.client.add_event_listener(
        lambda event: counting_events and received.update((event.name,)))
    done = gevent.event.Event()
    final_at: dict[str, float] = {}

    class Completion:
        def call_dialing(self, ticket: Any) -> None: ...
        def call_answered(self, ticket: Any) -> None: ...
        def call_step(self, ticket: Any, entry: Any) -> None: ...
        def call_ended(self, ticket: Any, *args: Any) -> None:
            final_at[str(ticket.call_id)] = time.time()  # told after the commit

        def request_completed(self, ticket: Any) -> None:
            done.set()

    service.dispatcher.runner.observers.add(Completion())
    server = make_server(service.api.app, "127.0.0.1:0")
    server.start()
    service.start()
    throttle = ThrottleWatch(service.dispatcher.pool.first)
    try:
        service.dispatching.wait(30)
        # A new process sends nothing in its first second (the switch still counts what a
        # previous one sent then, docs/reliability.md): measured warm, as a CRM meets a running
        # service, like the bare client, which is connected and subscribed before "go".
        gate = service.dispatcher.gate
        gevent.sleep(gate.switch.wait_seconds(gate.clock()))
        org = bootstrap.create_organization(service.api.repo, "bench", lines=spec.lines,
                                            cps=spec.cps)
        service.dispatcher.refresh_organizations()
        key = bootstrap.create_api_key(service.api.repo, org.id)
        counting_events.append(True)
        base = "http://{}:{}".format(*server.address[:2])
        destinations = [
            {"phone": spec.callee, "caller": "+6582674904",
             "properties": {"name": f"{NAMES[i % len(NAMES)]} {i}"}}
            for i in range(spec.calls)
        ]
        body = {"requestId": spec.tag, "destinations": destinations,
                "callFlow": {"steps": [{"name": "play", "message": {"msg": spec.text}}]}}
        go()
        watching = gevent.spawn(throttle.watch)
        reply = requests.post(f"{base}/v1/call", json=body, headers={API_KEY_HEADER: key},
                              timeout=120)
        reply.raise_for_status()
        completed = done.wait(spec.max_seconds)
        watching.kill()
        outcomes: dict[str, int] = {}
        per_call: dict[str, str] = {}
        cursor: str | None = ""
        while cursor is not None:
            status = requests.get(f"{base}/v1/status/{spec.tag}", headers={API_KEY_HEADER: key},
                                  params={"limit": 1000, "cursor": cursor or None},
                                  timeout=120).json()
            for detail in status.get("details", []):
                key_ = f"{detail['status']} {detail.get('hangupCause') or ''}".strip()
                outcomes[key_] = outcomes.get(key_, 0) + 1
                per_call[detail["callId"]] = key_
            cursor = status.get("nextCursor")
    finally:
        server.stop(timeout=2)
        service.stop(grace_seconds=5)
    ended_by_robocall = sum(n for cause, n in outcomes.items() if " ROBOCALL_" in cause)
    cut_off = sum(n for cause, n in outcomes.items() if "SWITCH_CONNECTION_LOST" in cause)
    return {"completed_in_time": completed, "counts": status.get("counts"), "causes": outcomes,
            "ended_by_robocall": ended_by_robocall, "connection_lost": cut_off,
            "per_call": per_call, "final_at": final_at, "throttle": throttle.summary(),
            "events_received": sum(received.values()),
            "events_received_per_call": round(sum(received.values()) / spec.calls, 2),
            "events_by_name": dict(received.most_common()),
            **({"chain": chain.summary(spec.lines)} if chain is not None else {})}


class ThrottleWatch:
    """What the switch's health made of the run: robocall's dial-rate factor (the share of
    its pace it used), sampled every ``INTERVAL`` s, and the signals behind it."""

    INTERVAL = 0.25
    SHARES = ((1.0, "100%"), (0.75, "75-99%"), (0.5, "50-74%"), (0.26, "26-49%"),
              (0.0, "25% (the floor)"))

    def __init__(self, member: Any) -> None:
        self.member = member
        self.factors: list[float] = []
        self.signals: dict[str, list[float]] = {}
        self.lowest = ""

    def watch(self) -> None:
        import gevent

        while True:
            factor = float(self.member.health_factor)
            if not self.factors or factor < min(self.factors):
                self.lowest = self.member.health.describe()
            self.factors.append(factor)
            read = getattr(self.member.health, "signals", None)  # not in older robocalls
            for name, value in (read() if read else {}).items():
                if value is not None:
                    self.signals.setdefault(name, []).append(float(value))
            gevent.sleep(self.INTERVAL)

    def summary(self) -> dict[str, Any]:
        factors = self.factors or [1.0]
        shares: dict[str, float] = {}
        for factor in factors:
            label = next(label for floor, label in self.SHARES if factor >= floor - 1e-9)
            shares[label] = shares.get(label, 0) + 1
        signals = {
            name: {"p50": round(percentile(values, 0.5), 3),
                   "p99": round(percentile(values, 0.99), 3), "max": round(max(values), 3)}
            for name, values in self.signals.items()
        }
        # the factor over the run, one value per tenth of the samples
        step = max(1, len(factors) // 10)
        return {
            "mean_factor": round(sum(factors) / len(factors), 2),
            "min_factor": round(min(factors), 2),
            "time_share": {label: round(n / len(factors), 2) for label, n in shares.items()},
            "over_time": [round(min(factors[i:i + step]), 2)
                          for i in range(0, len(factors), step)],
            "at_lowest": self.lowest,
            "signals": signals,
        }


def child_main(spec: Spec) -> None:
    """A client process: say ready, wait for go, run, print the result as the last line."""
    started: list[float] = []
    statements = None
    profiler = None
    profile = spec.profile or os.environ.get("BENCH_PROFILE")
    if profile and spec.client != "bare":  # where robocall's CPU goes
        profiler = CpuSampler(profile)
    if spec.client != "bare":
        from gevent import monkey

        monkey.patch_all()  # before peewee is imported: its connection state is per greenlet
        statements = count_statements()

    def go() -> None:
        print("ready", flush=True)
        sys.stdin.readline()
        started.append(time.monotonic())
        if statements is not None:
            statements.clear()  # the run's statements, not the migrations' and the setup's
        if profiler is not None:
            profiler.enable()  # the run, not the imports and the setup

    if spec.client == "bare":
        go()
        result = bare_client(spec)
    else:
        assert statements is not None
        result = robocall_client(spec, go)
        if profiler is not None:
            profiler.disable()
        result["store_statements"] = dict(statements.most_common())
    result["wall_seconds"] = round(time.monotonic() - started[0], 2)
    print("result " + json.dumps(result), flush=True)


class CpuSampler:
    """A sampling profiler of CPU time: every ms of the process's CPU (SIGPROF), the Python
    frame running then — whichever greenlet it is in, which a tracing profiler (cProfile)
    gets wrong under gevent. Written as JSON: the share of samples per function where it
    ran (``self``) and per function anywhere on the stack (``total``), and per module."""

    INTERVAL = 0.001

    def __init__(self, path: str) -> None:
        from collections import Counter

        self.path = path
        self.own: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.modules: Counter[str] = Counter()
        self.samples = 0

    def _sample(self, signum: int, frame: Any) -> None:
        self.samples += 1
        seen = set()
        first = True
        while frame is not None:
            code = frame.f_code
            name = f"{_short(code.co_filename)}:{code.co_name}"
            if first:
                self.own[name] += 1
                self.modules[_short(code.co_filename)] += 1
                first = False
            if name not in seen:
                seen.add(name)
                self.total[name] += 1
            frame = frame.f_back

    def enable(self) -> None:
        import signal

        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.INTERVAL, self.INTERVAL)

    def disable(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        n = max(1, self.samples)

        def share(counter: Any, top: int) -> dict[str, float]:
            return {k: round(100 * v / n, 1) for k, v in counter.most_common(top)}

        Path(self.path).write_text(json.dumps({
            "samples": self.samples, "modules": share(self.modules, 40),
            "self": share(self.own, 60), "total": share(self.total, 120),
        }, indent=1))


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/robocall/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]


def count_statements() -> Any:
    """Count every SQL statement robocall's store sends (by its first words), from now on."""
    from collections import Counter

    import peewee

    counted: Counter[str] = Counter()
    execute_sql = peewee.Database.execute_sql

    def counting(self: Any, sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        words = sql.split(None, 3)
        kind = " ".join(words[:3]) if words[:1] != ["SELECT"] else "SELECT"
        if words[:1] == ["SELECT"] and " FROM " in sql:
            kind = "SELECT FROM " + sql.split(" FROM ", 1)[1].split(None, 1)[0]
        counted[kind] += 1
        return execute_sql(self, sql, params, *args, **kwargs)

    commit = peewee.Database.commit

    def counting_commit(self: Any) -> Any:
        counted["COMMIT"] += 1
        return commit(self)

    peewee.Database.execute_sql = counting  # type: ignore[method-assign]
    peewee.Database.commit = counting_commit  # type: ignore[method-assign]
    return counted


# --- the sampler and the orchestration (this process) -------------------------------------------


class Sampler:
    """An Event Socket connection of its own, watching the run's robo legs on the switch."""

    def __init__(self, esl: str) -> None:
        from robocall.esl.client import EslClient

        host, port, password = esl.split(":", 2)
        self.client = EslClient(host, int(port), password, events=SAMPLED, command_timeout=30)
        self.client.add_event_listener(self._on_event)
        self.client.connect()
        self.tag = ""
        self.reset("")

    def reset(self, tag: str) -> None:
        self.tag = tag
        self.live: set[str] = set()
        self.peak = 0
        self.created: dict[str, int] = {}
        self.answered: dict[str, int] = {}
        self.first_audio: dict[str, int] = {}
        self.call_of: dict[str, str] = {}  # leg -> robocall_call_id (robocall's legs only)
        # leg -> (Hangup-Cause, who sent the BYE, when: the switch's clock, seconds)
        self.ended: dict[str, tuple[str, str, float]] = {}

    def _on_event(self, event: Any) -> None:
        headers = event.headers
        if not self.tag or headers.get("variable_robocall_request_id") != self.tag:
            return
        leg = headers.get("Unique-ID", "")
        name = headers.get("Event-Name")
        stamp = int(headers.get("Event-Date-Timestamp") or 0)
        call_id = headers.get("variable_robocall_call_id")
        if call_id:
            self.call_of.setdefault(leg, call_id)
        if name == "CHANNEL_CREATE":
            self.created.setdefault(leg, stamp)
            self.live.add(leg)
            self.peak = max(self.peak, len(self.live))
        elif name == "CHANNEL_ANSWER":
            self.answered.setdefault(leg, stamp)
        elif name == "PLAYBACK_START":
            self.first_audio.setdefault(leg, stamp)
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.live.discard(leg)
            self.ended[leg] = (headers.get("Hangup-Cause") or "",
                               headers.get("variable_sip_hangup_disposition") or "",
                               stamp / 1e6)

    def hang_up_leftovers(self) -> None:
        from robocall.errors import SwitchError

        try:
            self.client.api(f"hupall NORMAL_CLEARING robocall_request_id {self.tag}")
        except SwitchError as err:
            print(f"could not hang the leftovers up: {err}", file=sys.stderr)


FINAL = ("completed", "failed", "cancelled")


def status_truth(per_call: dict[str, str], final_at: dict[str, float],
                 sampler: Sampler) -> dict[str, Any]:
    """robocall's final statuses against what the switch said of each call's leg (the sampler's
    events, never robocall's): ``live_given_up`` are calls recorded final whose leg was still up
    after robocall finished, or ended more than a second after robocall recorded the call final
    (same machine's clock); ``false_status`` are statuses the switch contradicts: ``completed``
    without an answer or without a playback, a cause other than the leg's own when robocall did
    not say it ended the call (``ROBOCALL_*``, ``SWITCH_CONNECTION_LOST``)."""
    legs: dict[str, list[str]] = {}
    for leg, call_id in sampler.call_of.items():
        legs.setdefault(call_id, []).append(leg)
    given_up: list[str] = []
    false: dict[str, list[str]] = {}
    not_final = 0
    hung_up_by: dict[str, int] = {}
    for call_id, said in per_call.items():
        status, _, cause = said.partition(" ")
        if status not in FINAL:
            not_final += 1
            continue
        mine = legs.get(call_id, [])
        if any(leg in sampler.live for leg in mine):
            given_up.append(f"{call_id} {said}")
            continue
        ended_at = [sampler.ended[leg][2] for leg in mine if leg in sampler.ended]
        if call_id in final_at and any(at > final_at[call_id] + 1.0 for at in ended_at):
            late = max(ended_at) - final_at[call_id]
            given_up.append(f"{call_id} {said} (leg ended {late:.1f} s after)")
            continue
        for leg in mine:
            switch_cause, disposition, _ = sampler.ended.get(leg, ("", "", 0.0))
            who = "robocall" if disposition.startswith("send_") else disposition or "?"
            hung_up_by[who] = hung_up_by.get(who, 0) + 1
            ours = cause.startswith("ROBOCALL_") or cause == "SWITCH_CONNECTION_LOST"
            wrong = ""
            if status == "completed" and leg not in sampler.answered:
                wrong = "completed, never answered"
            elif status == "completed" and leg not in sampler.first_audio:
                wrong = "completed, never played"
            elif not ours and switch_cause and cause != switch_cause:
                wrong = f"cause {cause}, switch said {switch_cause}"
            if wrong:
                false.setdefault(wrong, []).append(f"{call_id} {said} ({disposition})")
    return {
        "calls": len(per_call), "not_final": not_final, "with_a_leg": sum(
            1 for call_id in per_call if call_id in legs),
        "legs_hung_up_by": hung_up_by,
        "live_given_up": len(given_up), "live_given_up_calls": given_up[:10],
        "false_status": sum(len(v) for v in false.values()),
        "false_status_kinds": {k: {"n": len(v), "calls": v[:5]} for k, v in false.items()},
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def run_client(spec: Spec, sampler: Sampler, settle: float) -> dict[str, Any]:
    import gevent

    sampler.reset(spec.tag)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(asdict(spec))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        while (line := child.stdout.readline()) and line.strip() != "ready":
            pass
        cpu_before = cpu_seconds(child.pid)
        went = time.time()
        child.stdin.write("go\n")
        child.stdin.flush()
        result: dict[str, Any] = {}
        while line := child.stdout.readline():
            if line.startswith("result "):
                cpu = cpu_seconds(child.pid) - cpu_before
                result = json.loads(line[len("result "):])
                break
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    gevent.sleep(settle)
    left = len(sampler.live)
    per_call = result.pop("per_call", None)
    final_at = result.pop("final_at", {})
    truth = status_truth(per_call, final_at, sampler) if per_call is not None else None
    if left:
        sampler.hang_up_leftovers()
    latencies = [(sampler.first_audio[leg] - at) / 1000 for leg, at in sampler.answered.items()
                 if leg in sampler.first_audio]
    wall = result.get("wall_seconds") or float("nan")
    # How long each leg held its line (the switch's CHANNEL_CREATE to HANGUP_COMPLETE), and the
    # share of lines x wall time legs held: what is left is a line free between two calls.
    held = [sampler.ended[leg][2] - at / 1e6 for leg, at in sampler.created.items()
            if leg in sampler.ended]
    summary: dict[str, Any] = {
        "calls_per_second": round(spec.calls / wall, 1),
        "cpu_ms_per_call": round(cpu * 1000 / spec.calls, 2) if result else None,
        "answered": len(sampler.answered),
        "answered_silent": len(sampler.answered) - len(latencies),
        "peak_legs": sampler.peak,
        "legs_over_lines": max(0, sampler.peak - spec.lines),
        "channels_left": left,
        "leg_seconds": {"p50": round(percentile(held, 0.5), 2),
                        "p99": round(percentile(held, 0.99), 2)} if held else None,
        "lines_busy_share": round(sum(held) / (spec.lines * wall), 2) if held else None,
        # from "go" (the request not even posted) to the first leg, and from the last leg's
        # end to the client saying it is done: what the run's start and end cost
        "live_legs_each_second": _live_each_second(sampler, went, wall),
        "first_leg_after_seconds": round(min(sampler.created.values()) / 1e6 - went, 2)
        if sampler.created else None,
        "done_after_last_leg_seconds": round(
            went + wall - max(end for _, _, end in sampler.ended.values()), 2)
        if sampler.ended else None,
        **result,
    }
    if truth is not None:
        summary["status_truth"] = truth
    statements = result.get("store_statements")
    if statements:
        summary["store_statements_per_call"] = round(sum(statements.values()) / spec.calls, 2)
    if latencies:
        summary["first_audio_ms"] = {
            "p50": round(percentile(latencies, 0.50), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
        }
    return summary


def _live_each_second(sampler: Sampler, start: float, wall: float) -> list[int]:
    """The run's legs up at each whole second from the start (the switch's stamps)."""
    spans = [(at / 1e6, sampler.ended[leg][2]) for leg, at in sampler.created.items()
             if leg in sampler.ended]
    if not spans or wall != wall:  # no legs, or no wall time (nan)
        return []
    return [sum(1 for began, ended in spans if began <= start + second < ended)
            for second in range(int(wall) + 1)]


def render_once(data_dir: Path, text: str) -> str:
    """The message as robocall's TTS cache renders it (robocall then finds it cached)."""
    from robocall.calls.prompts import Prompts
    from robocall.config import Settings
    from robocall.flow.model import Message
    from robocall.tts.cache import TtsCache

    cache = TtsCache.from_settings(Settings(data_dir=data_dir))
    return Prompts(cache).audio(Message(text), {"name": NAMES[0]})


def scratch_database() -> tuple[str, Any]:
    import psycopg2

    name = f"bench_lab_load_{secrets.token_hex(4)}"
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--calls", type=int, help="override every scenario's call count")
    parser.add_argument("--lines", type=int, help="override every scenario's lines")
    parser.add_argument("--cps", type=float, default=100.0, help="calls per second, both clients")
    parser.add_argument("--clients", default="bare,robocall",
                        help=f"in this order, of bare, robocall, {UNFILTERED} (robocall with "
                             "ROBOCALL_EVENT_FILTERS=false: every channel's events)")
    parser.add_argument("--esl", default=os.environ.get("ROBOCALL_LAB_ESL", ""))
    parser.add_argument("--dial-template", default="sofia/internal/{number}@127.0.0.1:5090")
    parser.add_argument("--callee", default="+6580000003")
    parser.add_argument("--database-url", default="", help="default: a scratch PostgreSQL db")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--profile", default="",
                        help="write a cProfile (CPU time) of the robocall process to this file")
    parser.add_argument("--fake", action="store_true",
                        help="FakeSwitch in a process of its own instead of the lab switch "
                             "(CPU per call without a real switch's load)")
    args = parser.parse_args()
    if args.child:
        child_main(Spec(**json.loads(args.child)))
        return
    fake = None
    if args.fake:
        fake = subprocess.Popen([sys.executable, "-c", FAKE], stdout=subprocess.PIPE,
                                cwd=ROOT, text=True)
        assert fake.stdout is not None
        args.esl = f"127.0.0.1:{int(fake.stdout.readline())}:ClueCon"
        args.dial_template = "sofia/gateway/robocall/{number}"
    try:
        run(args)
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)


def run(args: argparse.Namespace) -> None:
    """Every scenario asked for, each client in turn; one JSON line per scenario."""
    if not args.esl:
        raise SystemExit("no switch: set ROBOCALL_LAB_ESL=host:port:password, --esl or --fake")

    from gevent import monkey

    monkey.patch_all()
    sampler = Sampler(args.esl)
    data_dir = Path(tempfile.mkdtemp(prefix="robocall-bench-load-"))
    atexit.register(shutil.rmtree, data_dir, True)  # rendered audio, recordings, store
    for name in args.scenario or ["smoke"]:
        scenario = SCENARIOS[name]
        scenario = replace(scenario, calls=args.calls or scenario.calls,
                           lines=args.lines or scenario.lines)
        audio = render_once(data_dir, scenario.text)
        report: dict[str, Any] = {"scenario": asdict(scenario) | {"text": scenario.text[:40]},
                                  "cps": args.cps}
        for client in args.clients.split(","):
            database_url, drop = (args.database_url, None) if args.database_url else \
                scratch_database()
            spec = Spec(client=client, tag=f"bench-{name}-{client}-{secrets.token_hex(3)}",
                        calls=scenario.calls, lines=scenario.lines, cps=args.cps,
                        text=scenario.text, names=scenario.names, audio=audio, esl=args.esl,
                        dial_template=args.dial_template, callee=args.callee,
                        data_dir=str(data_dir), database_url=database_url,
                        max_seconds=args.max_seconds,
                        profile="" if client == "bare" or not args.profile else
                        args.profile if client == "robocall" else f"{args.profile}.{client}")
            try:
                report[client] = run_client(spec, sampler, args.settle)
            finally:
                if drop is not None:
                    drop()
        if "bare" in report and "robocall" in report:
            bare, robo = report["bare"], report["robocall"]
            report["ratios"] = {
                "calls_per_second": round(robo["calls_per_second"] / bare["calls_per_second"], 2),
                "first_audio_p99": round(robo["first_audio_ms"]["p99"]
                                         / bare["first_audio_ms"]["p99"], 2)
                if "first_audio_ms" in robo and "first_audio_ms" in bare else None,
            }
        print(json.dumps(report), flush=True)
    sampler.client.close()


if __name__ == "__main__":
    main()
