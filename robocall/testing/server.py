"""FakeSwitch: an inbound Event Socket server on 127.0.0.1 that behaves like FreeSWITCH 1.11.1.

Per connection, as the recordings show (esl-pipelined-commands.txt): ``auth/request`` first,
then every command gets exactly one reply, strictly in order; commands already received are
all answered before any event is written, and while an ``api`` runs no event is written on
that connection (they queue and follow its reply). Only subscribed events are sent, framed as
``text/event-json`` or ``text/event-plain``. A listener more than ``MAX_BACKLOG`` events behind
is dropped, as FreeSWITCH drops it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import RLock
from gevent.queue import Queue
from gevent.server import StreamServer

from robocall.testing import events as wire
from robocall.testing.api import run_api
from robocall.testing.callees import CalleeBook
from robocall.testing.channels import Channel, Message
from robocall.testing.switch import Switch

MAX_BACKLOG = 500
_CLOSE = object()


@dataclass(frozen=True)
class Command:
    """One command as received: its first line, headers and body."""

    line: str
    headers: dict[str, str]
    body: str = ""
    raw: bytes = b""


def split_commands(buffer: bytes) -> tuple[list[Command], bytes]:
    """Cut complete commands (lines up to a blank line, plus a Content-Length body) off a buffer."""
    commands: list[Command] = []
    while True:
        buffer = buffer.lstrip(b"\r\n") if buffer[:1] in (b"\n", b"\r") else buffer
        end = buffer.find(b"\n\n")
        if end < 0:
            return commands, buffer
        head = buffer[:end].decode("utf-8", "replace").replace("\r", "")
        lines = head.split("\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
        length = int(headers.get("Content-Length", "0") or 0)
        if len(buffer) < end + 2 + length:
            return commands, buffer
        body = buffer[end + 2:end + 2 + length].decode("utf-8", "replace")
        commands.append(Command(lines[0].strip(), headers, body, buffer[:end + 2 + length]))
        buffer = buffer[end + 2 + length:]


def passes_filters(filters: list[tuple[str, str]], event: wire.Event) -> bool:
    """Whether a listener with ``filters`` gets ``event`` (mod_event_socket 1.11.1,
    event_handler), filters in the order they were added:

    - a filter whose header the event lacks (looked up without case) is skipped;
    - leading ``+``, ``-`` and spaces of its value set its sign (the last sign wins; ``+`` by
      default) and are not compared;
    - a value that starts with ``/`` is a regular expression ``/pattern/flags`` searched for in
      the header's value (``i``: without case, ``s``: dot matches newline; no closing ``/``
      matches nothing); any other value is compared with the header's value without case;
    - the event goes when a positive filter matches and no negative one does: a negative match
      stops the search, and once the event goes positive filters are no longer compared (so
      negative filters alone let nothing through).

    No filters (none added, or all deleted): every subscribed event.
    """
    if not filters:
        return True
    send = False
    for name, raw in filters:
        found = event.get_ignoring_case(name)
        if found is None:
            continue
        positive = True
        compared = raw
        while compared and compared[0] in "+- ":
            if compared[0] != " ":
                positive = compared[0] == "+"
            compared = compared[1:]
        if send and positive:
            continue
        if raw.startswith("/"):
            matched = _regex_search(compared, found)
        else:
            matched = compared.lower() == found.lower()
        if matched:
            if not positive:
                return False
            send = True
    return send


def _regex_search(expression: str, value: str) -> bool:
    """switch_regex: ``/pattern/flags``, searched for (not anchored)."""
    pattern, slash, options = expression[1:].rpartition("/")
    if not slash:
        return False
    flags = (re.IGNORECASE if "i" in options else 0) | (re.DOTALL if "s" in options else 0)
    try:
        return re.search(pattern, value, flags) is not None
    except re.error:
        return False


class Connection:
    """One inbound ESL client."""

    def __init__(self, fake: FakeSwitch, sock: socket.socket) -> None:
        self.fake = fake
        self.sock = sock
        self.authed = False
        self.format = ""
        self.subscribed: set[str] = set()
        self.all_events = False
        self.filters: list[tuple[str, str]] = []
        self.lock = RLock()
        self.outbox: Queue[Any] = Queue()
        self.open = True
        self.sending = False  # the pump is inside sendall: the client may have stopped reading

    # --- output -------------------------------------------------------------------------------

    def deliver(self, event: wire.Event) -> None:
        """Queue an event if this listener subscribed to it (called by the switch)."""
        if not self.format or not self.open:
            return
        if not (self.all_events or event.name in self.subscribed):
            return
        if not passes_filters(self.filters, event):
            return
        if self.outbox.qsize() > self.fake.max_backlog and self.sending:
            # The client stopped reading (the socket is full) and fell too far behind.
            self.close()
            return
        self.outbox.put(event)

    def reply(self, frame: bytes) -> None:
        """Write a command's reply, ``reply_delay`` seconds late if the switch is told to be
        slow: a loaded FreeSWITCH acts at once but its replies reach robocall late. Events
        queued on this connection wait behind the reply, as they do behind a real one."""
        delay = self.fake.reply_delay
        if delay > 0:
            gevent.sleep(delay)
        self.send(frame)

    def send(self, frame: bytes) -> None:
        """Write a reply now (the caller holds the lock, so no event interleaves)."""
        try:
            self.sock.sendall(frame)
        except OSError:
            self.close()

    def pump(self) -> None:
        """Write queued events whenever no command is being answered, many per send."""
        while True:
            items = [self.outbox.get()]
            while not self.outbox.empty() and len(items) < 64:
                items.append(self.outbox.get_nowait())
            self._hold_back(items)
            with self.lock:
                if not self.open:
                    return
                frames = []
                for item in items:
                    if item is _CLOSE:
                        break
                    frames.append(item if isinstance(item, bytes) else self._encode(item))
                self.sending = True
                self.send(b"".join(frames))
                self.sending = False
            if _CLOSE in items:
                self.close()
                return

    def _hold_back(self, items: list[Any]) -> None:
        """With ``event_delay``: wait until the newest event here is that late behind its
        ``Event-Date-Timestamp`` (the switch's event threads falling behind)."""
        delay = self.fake.event_delay
        stamps = [item.get("Event-Date-Timestamp") for item in items
                  if isinstance(item, wire.Event)]
        if delay <= 0 or not stamps or not stamps[-1]:
            return
        due = int(stamps[-1]) / 1_000_000 + delay
        gevent.sleep(max(0.0, due - self.fake.switch.factory.clock()))

    def _encode(self, event: wire.Event) -> bytes:
        return wire.encode_plain(event) if self.format == "plain" else wire.encode_json(event)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if not self.open:
            return
        self.open = False
        if self in self.fake.switch.listeners:
            self.fake.switch.listeners.remove(self)
        self.outbox.put(_CLOSE)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def finish_with(self, notice: str) -> None:
        """After every queued event: a disconnect-notice, then EOF."""
        self.outbox.put(wire.disconnect_notice(notice))
        self.outbox.put(_CLOSE)

    # --- input --------------------------------------------------------------------------------

    def serve(self) -> None:
        """Greet, then answer commands in order until the client leaves or is sent away."""
        self.fake.connections.append(self)
        self.send(wire.auth_request())
        pump = gevent.spawn(self.pump)
        buffer = b""
        try:
            while self.open:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                commands, buffer = split_commands(buffer + data)
                with self.lock:
                    for command in commands:
                        if self.open and not self.handle(command):
                            self.close()  # exit, or a wrong password: FreeSWITCH hangs up
                        if not self.open:
                            break
        finally:
            self.close()
            pump.kill(block=False)
            if self in self.fake.connections:
                self.fake.connections.remove(self)

    def handle(self, command: Command) -> bool:
        """Answer one command; False when the connection must end."""
        self.fake.received.append(command.raw.decode("utf-8", "replace"))
        word, _, rest = command.line.partition(" ")
        if not self.authed:
            if word != "auth":
                self.send(wire.command_reply("-ERR command not found"))
                return True
            if rest.strip() != self.fake.password:
                self.send(wire.command_reply("-ERR invalid"))
                return False
            self.authed = True
            self.send(wire.command_reply("+OK accepted"))
            return True
        handler = getattr(self, f"_cmd_{word}", None)
        if handler is None:
            self.send(wire.command_reply("-ERR command not found"))
            return True
        try:
            return bool(handler(rest.strip(), command))
        except (ValueError, KeyError, IndexError) as err:
            # A malformed command must not kill the connection the way a crash would.
            self.send(wire.command_reply(f"-ERR {err}"))
            return True

    def _cmd_event(self, rest: str, command: Command) -> bool:
        kind, _, names = rest.partition(" ")
        if kind not in ("json", "plain"):
            self.send(wire.command_reply("-ERR invalid format"))
            return True
        self.format = kind
        for name in names.split():
            if name == "ALL":
                self.all_events = True
            elif name != "CUSTOM":
                self.subscribed.add(name)
        if self not in self.fake.switch.listeners:
            self.fake.switch.listeners.append(self)
        self.send(wire.command_reply(f"+OK event listener enabled {kind}"))
        return True

    def _cmd_noevents(self, rest: str, command: Command) -> bool:
        self.subscribed.clear()
        self.all_events = False
        self.send(wire.command_reply("+OK no longer listening for events"))
        return True

    def _cmd_nixevent(self, rest: str, command: Command) -> bool:
        self.subscribed.difference_update(rest.split())
        self.send(wire.command_reply("+OK events nixed"))
        return True

    def _cmd_filter(self, rest: str, command: Command) -> bool:
        """``filter <header> <value>`` (or ``filter add ...``), ``filter delete <header>
        [<value>]``, ``filter delete all``: mod_event_socket 1.11.1's parse_command."""
        name, space, value = command.line[len("filter "):].lstrip(" ").partition(" ")
        if name.lower() == "delete" and space:
            name, space, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                # switch_event_del_header_val: the name without case, the value exactly; no
                # value deletes every filter on that header.
                self.filters = [
                    (header, held) for header, held in self.filters
                    if header.lower() != name.lower() or (space and value and held != value)
                ]
            self.send(wire.command_reply(f"+OK filter deleted. [{name}][{value}]"))
        elif space:
            if name.lower() == "add":
                name, _, value = value.partition(" ")
            self.filters.append((name, value))
            self.send(wire.command_reply(f"+OK filter added. [{name}]=[{value}]"))
        else:
            self.send(wire.command_reply("-ERR invalid syntax"))
        return True

    def _cmd_exit(self, rest: str, command: Command) -> bool:
        self.send(wire.command_reply("+OK bye"))
        self.send(wire.disconnect_notice(wire.EXIT_NOTICE))
        return False

    def _cmd_api(self, rest: str, command: Command) -> bool:
        name, _, argument = rest.partition(" ")
        # Runs while holding the lock: no event is written on this connection meanwhile.
        self.reply(wire.api_response(run_api(self.fake.switch, name, argument)))
        return True

    def _cmd_bgapi(self, rest: str, command: Command) -> bool:
        name, _, argument = rest.partition(" ")
        job_uuid = command.headers.get("Job-UUID") or str(uuid.uuid4())
        switch = self.fake.switch

        def publish(result: str) -> None:
            switch.publish(switch.factory.background_job(job_uuid, name, argument, result))

        # The job starts at once; its reply may come late (reply_delay), as on a loaded switch.
        switch.spawn(run_api, switch, name, argument, publish)
        self.reply(wire.command_reply(f"+OK Job-UUID: {job_uuid}", job_uuid))
        return True

    def _cmd_sendmsg(self, rest: str, command: Command) -> bool:
        target = rest or command.headers.get("Unique-ID", "")
        channel = self.fake.switch.find(target)
        if channel is None or not channel.up:
            self.reply(wire.command_reply(f"-ERR invalid session id [{target}]"))
            return True
        self.fake.dispatch(channel, command)
        self.reply(wire.command_reply("+OK"))
        return True


class FakeSwitch:
    """A wire-level fake FreeSWITCH with scripted callees (see docs/fakeswitch-callees.md)."""

    def __init__(self, callees: CalleeBook | None = None, password: str = "ClueCon",
                 time_scale: float = 1.0, sessions_per_second: int = 30,
                 max_sessions: int = 1000, host: str = "127.0.0.1", port: int = 0,
                 max_backlog: int = MAX_BACKLOG) -> None:
        self.callees = callees if callees is not None else CalleeBook.people()
        self.max_backlog = max_backlog
        self.password = password
        self.switch = Switch(self.callees, time_scale, sessions_per_second, max_sessions)
        self.received: list[str] = []
        self.connections: list[Connection] = []
        # Seconds every api/bgapi/sendmsg reply waits before it is written (the switch acts at
        # once): a switch too loaded to answer in time, though nothing is lost.
        self.reply_delay = 0.0
        # Seconds every event is written after the moment it carries (Event-Date-Timestamp):
        # a switch whose event threads fall behind (events stay in order; replies do not wait).
        self.event_delay = 0.0
        # False: every new Event Socket connection is closed at once (a switch unreachable for
        # a while, its calls going on meanwhile).
        self.accepting = True
        self._server = StreamServer((host, port), self._accept)

    @classmethod
    def from_callee_file(cls, path: str | Path, **options: Any) -> FakeSwitch:
        """A fake whose callees come from a JSON callee file."""
        return cls(CalleeBook.from_file(path), **options)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeSwitch:
        """Render what the scripted callees say, bind and start accepting; returns self.

        Rendering first: a callee's speech must be ready when it answers, as a person's is
        (a render takes longer than a scaled-down answer delay)."""
        from robocall.testing.voice import render_script

        for callee in [self.callees.default, *self.callees.callees.values()]:
            # No default: people() answer by number, and say nothing scripted.
            if callee is not None and callee.audio:
                render_script(callee.audio)
        self._server.start()
        return self

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._server.address[1])

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to connect to."""
        return "127.0.0.1", self.port

    @property
    def url(self) -> str:
        """``esl://:PASSWORD@127.0.0.1:PORT``, the form ``--switch`` takes."""
        return f"esl://:{self.password}@127.0.0.1:{self.port}"

    def _accept(self, sock: socket.socket, _address: Any) -> None:
        if not self.accepting:
            sock.close()  # down for clients (fault tests); its calls go on
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Connection(self, sock).serve()

    def shutdown(self) -> None:
        """``fs_cli -x shutdown``: calls end with SYSTEM_SHUTDOWN, SHUTDOWN, notice, EOF."""
        self._server.stop(timeout=0)
        self.switch.hang_up_everything("SYSTEM_SHUTDOWN")
        self.switch.publish(self.switch.factory.shutdown())
        for connection in list(self.connections):
            connection.finish_with(wire.SHUTDOWN_NOTICE)
        gevent.wait([gevent.spawn(self._await_closed, c) for c in list(self.connections)],
                    timeout=5)
        self.switch.greenlets.kill(block=False)

    @staticmethod
    def _await_closed(connection: Connection) -> None:
        while connection.open:
            gevent.sleep(0.005)

    def stop(self) -> None:
        """Stop at once: no notices, every connection closed, every call greenlet killed."""
        self._server.stop(timeout=0)
        self.drop_connections()
        self.switch.greenlets.kill(block=False)

    def drop_connections(self) -> None:
        """Close every client connection abruptly (fault tests); calls keep running."""
        for connection in list(self.connections):
            connection.close()

    def __enter__(self) -> FakeSwitch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection and scripting -------------------------------------------------------------

    @property
    def playbacks(self) -> list[tuple[str, float, str]]:
        """(channel uuid, scripted ms after its answer, file) of every playback begun."""
        return list(self.switch.playbacks)

    def channels(self) -> list[Channel]:
        """The live channels, oldest first."""
        return list(self.switch.channels.values())

    def start_external_call(self, variables: dict[str, str] | None = None,
                            number: str = "+6590000000") -> str:
        """A call robocall did not make (CREATE/ANSWER events, a show channels row)."""
        return self.switch.start_external_call(variables, number)

    def end_external_call(self, channel_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """End an external call (HANGUP, HANGUP_COMPLETE, DESTROY)."""
        self.switch.end_external_call(channel_uuid, cause)

    def heartbeat(self, idle_cpu: float = 95.0) -> None:
        """Fire a HEARTBEAT saying the switch's CPU is ``idle_cpu`` percent idle."""
        switch = self.switch
        switch.publish(switch.factory.heartbeat(
            idle_cpu=idle_cpu, sessions=len(switch.channels), max_sessions=switch.max_sessions,
            sessions_per_second=switch.sessions_per_second, since_startup=switch.session_count,
            uptime_ms=int((switch.monotonic() - switch.started) * 1000)))

    def dispatch(self, channel: Channel, command: Command) -> None:
        """Act on a sendmsg: queue an execute, or hang up."""
        headers = command.headers
        call_command = headers.get("call-command", "")
        if call_command == "hangup":
            cause = headers.get("hangup-cause", "NORMAL_CLEARING")
            # FreeSWITCH acts on the message at the next media frame.
            self.switch.spawn(_hangup_soon, channel, cause, channel.queued_messages)
        elif call_command == "execute":
            argument = headers.get("execute-app-arg", command.body)
            loops = int(headers.get("loops", "1") or 1)
            for _ in range(max(loops, 1)):
                channel.queued_messages += 1
                channel.inbox.put(Message(
                    headers.get("execute-app-name", ""), argument,
                    headers.get("Event-UUID") or str(uuid.uuid4()), early=not channel.parked))


def _hangup_soon(channel: Channel, cause: str, after_messages: int) -> None:
    # Messages are handled in order: an execute sent before this hangup starts first, and the
    # hangup then cuts it within the next frame (esl-pipelined-commands.txt, case 4).
    frame = channel.switch.seconds(20)
    while channel.up and channel.started_messages < after_messages:
        gevent.sleep(frame)
    gevent.sleep(frame)
    channel.switch.kill(channel, cause)
