"""gevent transport for the FreeSWITCH Event Socket (inbound mode).

One :class:`EslClient` keeps a self-healing session with one FreeSWITCH. By default the session
is two authenticated connections: one carries the event stream, the other robocall's commands
(and their BACKGROUND_JOB results). On one shared connection a command's reply waits behind
every event queued before it — on a loaded switch the lab measured originate replies 2.2 s late
while FreeSWITCH had acted in 0.1 s — so replies get a socket of their own.

A reader greenlet per connection only parses frames and routes them: command replies to the
waiting command (FreeSWITCH answers a connection's commands strictly in order, so a FIFO matches
them), BACKGROUND_JOB results to the bgapi that chose the Job-UUID, CHANNEL_EXECUTE_COMPLETE to
the execute that chose the Event-UUID, every event to the queue of its channel (``Unique-ID``)
and to the listeners. The reader never waits on a consumer: FreeSWITCH drops a listener that
falls 500 events behind.

Every wait is bounded (:class:`SwitchTimeout`), and a timeout is only that: the connection stays
up and a late reply still reaches its slot. When a connection goes, the whole session goes with
it: every pending waiter fails at once with :class:`SwitchDisconnected`, channel queues get
:data:`DISCONNECTED`, and the client reconnects with exponential backoff until
:meth:`EslClient.close`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeAlias

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import gevent.socket
import orjson

from robocall.errors import (
    CommandFailed,
    ProtocolError,
    SwitchAuthError,
    SwitchDisconnected,
    SwitchError,
    SwitchNotConnected,
    SwitchTimeout,
)
from robocall.esl import commands
from robocall.esl.protocol import (
    API_RESPONSE,
    AUTH_REQUEST,
    COMMAND_REPLY,
    DISCONNECT_NOTICE,
    RUDE_REJECTION,
    Event,
    Frame,
    FrameParser,
)

log = logging.getLogger(__name__)

_RECV_BYTES: Final = 256 * 1024
_BACKGROUND_JOB: Final = "BACKGROUND_JOB"
_JOB_FILTER: Final = ("Event-Name", _BACKGROUND_JOB)
_CHANNEL_GONE: Final = frozenset({"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})


class _DisconnectMarker:
    """Put on every channel queue when the connection drops: events may have been missed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DISCONNECTED"


DISCONNECTED: Final = _DisconnectMarker()

EventListener = Callable[[Event], None]
ReplyListener = Callable[[float], None]


class BackgroundJob:
    """A bgapi command in flight; :meth:`wait` gives its BACKGROUND_JOB result."""

    def __init__(self, job_uuid: str, result: gevent.event.AsyncResult) -> None:
        self.job_uuid = job_uuid
        self._result = result

    def wait(self, timeout: float) -> str:
        """The job's result text (``+OK ...`` or ``-ERR USER_BUSY``...); an ``-ERR`` is an outcome
        here, not an exception, because a failed originate is a normal call result. Raises
        :class:`SwitchTimeout` when it is late (the job may still report: wait again),
        :class:`CommandFailed` when FreeSWITCH refused the command itself, and
        :class:`SwitchDisconnected` when the session dropped first."""
        return str(_wait(self._result, timeout, f"BACKGROUND_JOB {self.job_uuid}"))

    def when_done(self, callback: Callable[[str | BaseException], None]) -> None:
        """``callback(result text or exception)`` once the job is over, called in the hub (it
        must not block): what :meth:`wait` would return or raise, without a greenlet waiting."""

        def done(result: gevent.event.AsyncResult) -> None:
            callback(str(result.value) if result.successful() else result.exception)

        self._result.rawlink(done)


class Execution:
    """A sendmsg execute in flight; :meth:`wait` gives its CHANNEL_EXECUTE_COMPLETE event."""

    def __init__(
        self, channel_uuid: str, event_uuid: str, result: gevent.event.AsyncResult
    ) -> None:
        self.channel_uuid = channel_uuid
        self.event_uuid = event_uuid
        self._result = result

    def wait(self, timeout: float) -> Event:
        """The CHANNEL_EXECUTE_COMPLETE whose Application-UUID is this execution's Event-UUID."""
        event = _wait(self._result, timeout, f"execution {self.event_uuid}")
        assert isinstance(event, Event)
        return event


def new_uuid() -> str:
    """A random (version 4) UUID as text: what ``str(uuid.uuid4())`` gives, in a third of its
    time (``uuid.UUID``'s constructor is Python; three of these a call were ~2 % of robocall's
    CPU on the lab). For channels (``origination_uuid``), jobs and executions."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return (f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-"
            f"{digits[20:]}")


def _send_now(sock: socket.socket, data: bytes) -> int:
    """Send what the socket takes without waiting: the bytes sent (0 when its buffer is full,
    or when it is not a gevent socket, which could block the hub)."""
    if not isinstance(sock, gevent.socket.socket):
        return 0
    try:
        return int(sock.send(data, 0, timeout=0.0))  # gevent's: raises instead of waiting
    except BlockingIOError:
        return 0


def _loop_turns() -> Callable[[], int]:
    """How many times the event loop has polled so far (libev's ``iteration``); a count that
    never moves where the loop does not tell (a reader then always yields after a read)."""
    loop = gevent.get_hub().loop
    if isinstance(getattr(loop, "iteration", None), int):
        return lambda: int(loop.iteration)
    return lambda: 0


def _wait(result: gevent.event.AsyncResult, timeout: float, what: str) -> Any:
    try:
        return result.get(timeout=timeout)
    except gevent.Timeout as err:
        raise SwitchTimeout(f"no answer to {what} within {timeout} s") from err


class _JobReply:
    """The command/reply of a bgapi: nobody waits for it; only a refusal matters (it fails the
    job), since the BACKGROUND_JOB carries the result."""

    __slots__ = ("jobs", "job_uuid", "result")

    def __init__(
        self, jobs: dict[str, gevent.event.AsyncResult], job_uuid: str,
        result: gevent.event.AsyncResult,
    ) -> None:
        self.jobs = jobs
        self.job_uuid = job_uuid
        self.result = result

    def set(self, frame: Frame) -> None:
        if not frame.text.startswith("+OK"):
            self.jobs.pop(self.job_uuid, None)
            self.result.set_exception(CommandFailed(frame.text.strip()))

    def set_exception(self, error: BaseException) -> None:
        self.result.set_exception(error)


class _LoggedReply:
    """The reply to a command nobody waits for: a refusal is logged at ``level``. A ``filter``
    sent while the session runs (refused, the switch sends more events than asked for, never
    fewer) and a ``hangup`` (the channel's HANGUP_COMPLETE is what confirms it)."""

    __slots__ = ("wire", "level")

    def __init__(self, wire: str, level: int = logging.ERROR) -> None:
        self.wire = wire
        self.level = level

    def set(self, frame: Frame) -> None:
        if not frame.text.startswith("+OK"):
            log.log(self.level, "FreeSWITCH refused %r: %s",
                    self.wire.strip().replace("\n", " | "), frame.text.strip())

    def set_exception(self, error: BaseException) -> None:
        pass  # the session is gone: the next one sends every filter again, and a call whose
        # hangup went with it is settled by its runner's resync (it asks the switch)


_ReplySlot: TypeAlias = "gevent.event.AsyncResult[Any] | _JobReply | _LoggedReply"
EventFilter: TypeAlias = tuple[str, str]


class _Connection:
    """One socket of a session: its parser, its send lock and its replies in order."""

    def __init__(self, sock: socket.socket, parser: FrameParser, role: str) -> None:
        self.sock = sock
        self.parser = parser
        self.role = role
        self.send_lock = gevent.lock.Semaphore()
        # (when it was sent, where its reply goes), in send order.
        self.replies: deque[tuple[float, _ReplySlot]] = deque()
        self.reader: gevent.Greenlet | None = None


class _Session:
    """The connections to one FreeSWITCH that live and die together, and what waits on them."""

    def __init__(self, commands_connection: _Connection, events_connection: _Connection) -> None:
        self.commands = commands_connection
        self.events = events_connection
        self.connections = (
            (commands_connection,)
            if events_connection is commands_connection
            else (commands_connection, events_connection)
        )
        self.alive = True
        self.jobs: dict[str, gevent.event.AsyncResult] = {}
        self.executions: dict[str, tuple[str, gevent.event.AsyncResult]] = {}
        # channel uuid -> Event-UUIDs of its executions in flight (a hangup fails them at
        # once, without a scan of every live call's)
        self.channel_executions: dict[str, set[str]] = {}
        self.closed = gevent.event.Event()
        # The filters the events connection holds (sent, or on their way), in order.
        self.filters: list[EventFilter] = []

    def add_execution(
        self, event_uuid: str, channel_uuid: str, result: gevent.event.AsyncResult
    ) -> None:
        self.executions[event_uuid] = (channel_uuid, result)
        self.channel_executions.setdefault(channel_uuid, set()).add(event_uuid)

    def pop_execution(self, event_uuid: str) -> gevent.event.AsyncResult | None:
        found = self.executions.pop(event_uuid, None)
        if found is None:
            return None
        channel_uuid, result = found
        pending = self.channel_executions.get(channel_uuid)
        if pending is not None:
            pending.discard(event_uuid)
            if not pending:
                del self.channel_executions[channel_uuid]
        return result


class EslClient:
    """A self-healing inbound Event Socket session with one FreeSWITCH."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        *,
        command_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_connected: Callable[[EslClient], None] | None = None,
        on_disconnected: Callable[[EslClient], None] | None = None,
        events: tuple[str, ...] = commands.ROBOCALL_EVENTS,
        command_connection: bool = False,
        on_reply: ReplyListener | None = None,
        event_filters: Iterable[EventFilter] = (),
    ) -> None:
        """``command_connection``: send commands on a connection of their own (robocall's
        service does; a single connection is what tools and the scripted tests use).
        ``on_reply(seconds)`` hears how long each command waited for its reply.
        ``event_filters``: see :meth:`set_event_filters`."""
        self.host = host
        self.port = port
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._auth_command = commands.auth(password).encode()
        self._split = command_connection
        if command_connection:
            stream = tuple(name for name in events if name != _BACKGROUND_JOB) or ("HEARTBEAT",)
            self._subscribe_events = commands.event_json(stream).encode()
            self._subscribe_commands: bytes | None = commands.event_json(
                (_BACKGROUND_JOB,)
            ).encode()
        else:
            self._subscribe_events = commands.event_json(events).encode()
            self._subscribe_commands = None
        self.on_connected = on_connected  # may be set after construction (bootstrap)
        self._on_disconnected = on_disconnected
        self._on_reply = on_reply
        self._session: _Session | None = None
        self._queues: dict[str, gevent.queue.Queue] = {}
        self._listeners: list[EventListener] = []
        self._closed = False
        self._supervisor: gevent.Greenlet | None = None
        self._connected = gevent.event.Event()
        self._filters: list[EventFilter] = []
        self.set_event_filters(event_filters)

    # --- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, authenticate and subscribe now (errors raise here), then keep it alive."""
        if self._closed:
            raise SwitchDisconnected("client is closed")
        if self._supervisor is not None:
            raise SwitchError("the client was already started")
        session = self._open()
        self._supervisor = gevent.spawn(self._supervise, session)

    def start(self) -> None:
        """Connect in the background, retrying with backoff until FreeSWITCH is reachable.

        For a process that must come up before its switch does; :meth:`wait_connected` or
        ``on_connected`` tell when it is up."""
        if self._closed:
            raise SwitchDisconnected("client is closed")
        if self._supervisor is not None:
            raise SwitchError("the client was already started")
        self._supervisor = gevent.spawn(self._supervise, None)

    @property
    def connected(self) -> bool:
        """Whether a session is up and subscribed right now."""
        return self._session is not None and self._session.alive

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the client never reconnects again)."""
        return self._closed

    def wait_connected(self, timeout: float) -> None:
        """Block until a session is up (after a drop, until the reconnect succeeded)."""
        if not self._connected.wait(timeout):
            raise SwitchTimeout(f"not connected to {self.host}:{self.port} within {timeout} s")

    def close(self) -> None:
        """Stop for good: drop the session, fail every waiter, never reconnect."""
        self._closed = True
        session = self._session
        if session is not None:
            self._drop(session, "client closed")
        if self._supervisor is not None and self._supervisor is not gevent.getcurrent():
            self._supervisor.kill(block=False)

    def _open(self) -> _Session:
        early: list[tuple[_Connection, list[Frame]]] = []
        filters = list(self._filters)
        if self._subscribe_commands is None:
            connection = self._open_connection(
                self._subscribe_events, "events+commands", early, filters
            )
            session = _Session(connection, connection)
        else:
            command_side = self._open_connection(self._subscribe_commands, "commands", early)
            try:
                event_side = self._open_connection(
                    self._subscribe_events, "events", early, filters
                )
            except BaseException:
                command_side.sock.close()
                raise
            session = _Session(command_side, event_side)
        session.filters = filters
        self._session = session
        for connection, pending in early:
            connection.reader = gevent.spawn(self._read, session, connection, pending)
        self._connected.set()
        # Filters changed during the handshake: the new session catches up.
        self._sync_filters(session)
        return session

    def _open_connection(
        self,
        subscribe: bytes,
        role: str,
        early: list[tuple[_Connection, list[Frame]]],
        filters: Sequence[EventFilter] = (),
    ) -> _Connection:
        """Connect, authenticate and subscribe one socket (with ``filters``: the events
        connection); frames that came early go to ``early`` for its reader."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as err:
            raise SwitchDisconnected(f"cannot connect to {self.host}:{self.port}: {err}") from err
        try:
            # Commands are small writes answered at once: Nagle would hold each ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            parser = FrameParser()
            pending: deque[Frame] = deque()
            greeting = self._read_frame(sock, parser, pending)
            if greeting.content_type == RUDE_REJECTION:
                raise SwitchAuthError(f"FreeSWITCH refused the connection: {greeting.text.strip()}")
            if greeting.content_type != AUTH_REQUEST:
                raise ProtocolError(f"expected auth/request, got {greeting.content_type}")
            sock.sendall(self._auth_command)
            reply = self._read_frame(sock, parser, pending)
            if not reply.text.startswith("+OK"):
                raise SwitchAuthError(f"FreeSWITCH refused the password: {reply.text}")
            # The filters first: the subscription starts the stream, already filtered. All sent
            # at once, their replies read after.
            wires = [commands.event_filter(header, value) for header, value in filters]
            sock.sendall("".join(wires).encode() + subscribe)
            for wire in wires:
                reply = self._read_frame(sock, parser, pending)
                if not reply.text.startswith("+OK"):
                    raise CommandFailed(f"{wire.strip()}: {reply.text}")
            reply = self._read_frame(sock, parser, pending)
            if not reply.text.startswith("+OK"):
                raise CommandFailed(reply.text)
            sock.settimeout(None)
        except BaseException as err:
            sock.close()
            if isinstance(err, OSError):
                raise SwitchDisconnected(f"connection to FreeSWITCH failed: {err}") from err
            raise
        connection = _Connection(sock, parser, role)
        early.append((connection, list(pending)))
        return connection

    def _read_frame(self, sock: socket.socket, parser: FrameParser, pending: deque[Frame]) -> Frame:
        """During the handshake: the next frame, within connect_timeout (socket timeout)."""
        while not pending:
            try:
                data = sock.recv(_RECV_BYTES)
            except TimeoutError as err:
                raise SwitchTimeout("FreeSWITCH did not answer the handshake in time") from err
            if not data:
                raise SwitchDisconnected("FreeSWITCH closed the connection during the handshake")
            pending.extend(parser.feed(data))
        return pending.popleft()

    def _supervise(self, session: _Session | None) -> None:
        """Keep a session up until close(): announce it, wait for its end, reconnect."""
        first_delay = 0.0  # start(): the first attempt is immediate
        while True:
            if session is None:
                session = self._reconnect(first_delay)
                if session is None:
                    return
            self._notify(self.on_connected, "on_connected")
            session.closed.wait()
            self._notify(self._on_disconnected, "on_disconnected")
            session = None
            first_delay = self.backoff_initial

    def _reconnect(self, delay: float) -> _Session | None:
        """Open a session, retrying with exponential backoff; None once the client is closed."""
        backoff = self.backoff_initial
        while not self._closed:
            if delay:
                gevent.sleep(delay)
            if self._closed:
                break
            try:
                session = self._open()
            except SwitchError as err:
                log.warning("connecting to %s:%s failed: %s", self.host, self.port, err)
                delay, backoff = backoff, min(backoff * 2, self.backoff_max)
                continue
            log.info("connected to FreeSWITCH at %s:%s", self.host, self.port)
            return session
        return None

    def _notify(self, callback: Callable[[EslClient], None] | None, what: str) -> None:
        if callback is None or self._closed:
            return
        try:
            callback(self)
        except Exception:
            log.exception("%s callback failed", what)

    # --- the readers ---------------------------------------------------------------------------

    def _read(self, session: _Session, connection: _Connection, early: list[Frame]) -> None:
        reason = f"{connection.role} connection closed by FreeSWITCH"
        try:
            if self._dispatch(session, connection, early):
                return
            sock = connection.sock
            parser = connection.parser
            turns = _loop_turns()
            while session.alive:
                turned = turns()
                data = sock.recv(_RECV_BYTES)
                if not data:
                    return
                if self._dispatch(session, connection, parser.feed(data)):
                    reason = "FreeSWITCH sent a disconnect-notice"
                    return
                if turns() == turned:
                    # recv does not yield while data keeps arriving; let the rest of the
                    # process run. (When it waited for data, the rest ran meanwhile: a yield
                    # then is one more turn of the loop per read, for nothing.)
                    gevent.sleep(0)
        except ProtocolError as err:
            reason = f"protocol error: {err}"
            log.error("Event Socket stream broken, dropping the connection: %s", err)
        except OSError as err:
            reason = f"connection error: {err}"
        finally:
            self._drop(session, reason)

    def _dispatch(self, session: _Session, connection: _Connection, frames: list[Frame]) -> bool:
        """Route frames; True when FreeSWITCH said it is disconnecting us."""
        for frame in frames:
            event = frame.event
            if event is not None:
                self._route(session, event)
                continue
            content_type = frame.content_type
            if content_type in (COMMAND_REPLY, API_RESPONSE):
                if not connection.replies:
                    raise ProtocolError(f"a {content_type} nobody asked for: {frame.text[:80]!r}")
                sent_at, slot = connection.replies.popleft()
                slot.set(frame)
                if self._on_reply is not None:
                    self._on_reply(time.monotonic() - sent_at)
            elif content_type == DISCONNECT_NOTICE:
                return True
            else:
                log.info("ignoring an Event Socket frame of type %s", content_type)
        return False

    def _route(self, session: _Session, event: Event) -> None:
        headers = event.headers
        name = headers.get("Event-Name")
        if name == _BACKGROUND_JOB:
            job = session.jobs.pop(headers.get("Job-UUID", ""), None)
            if job is not None:
                job.set(event.body)
            if self._split:
                return  # on the command connection: no channel's event, no listener's
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            execution = session.pop_execution(headers.get("Application-UUID", ""))
            if execution is not None:
                execution.set(event)
        # Listeners first: a greenlet they wake (the dispatcher, on a line released) is
        # scheduled ahead of the call greenlets this event wakes, so a freed line is redialled
        # before the ended call writes its report.
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed", listener)
        channel_uuid = headers.get("Unique-ID")
        if channel_uuid is not None:
            queue = self._queues.get(channel_uuid)
            if queue is not None:
                queue.put_nowait(event)
            if name in _CHANNEL_GONE and channel_uuid in session.channel_executions:
                # Apps still queued on a finished channel never complete: fail their waiters
                # now. (The app a hangup cuts completes before HANGUP_COMPLETE.)
                self._fail_executions(session, channel_uuid)

    @staticmethod
    def _fail_executions(session: _Session, channel_uuid: str) -> None:
        for key in list(session.channel_executions.get(channel_uuid, ())):
            execution = session.pop_execution(key)
            assert execution is not None  # listed for its channel, so in flight
            execution.set_exception(
                CommandFailed(f"channel {channel_uuid} ended before {key} completed")
            )

    def _drop(self, session: _Session, reason: str) -> None:
        """Fail everything that waits on this session, once."""
        if not session.alive:
            return
        session.alive = False
        if self._session is session:
            self._session = None
            self._connected.clear()
        error = SwitchDisconnected(reason)
        for connection in session.connections:
            with contextlib.suppress(OSError):
                connection.sock.close()
            while connection.replies:
                connection.replies.popleft()[1].set_exception(error)
        for job in session.jobs.values():
            job.set_exception(error)
        session.jobs.clear()
        for _, execution in session.executions.values():
            execution.set_exception(error)
        session.executions.clear()
        session.channel_executions.clear()
        for queue in self._queues.values():
            queue.put_nowait(DISCONNECTED)
        current = gevent.getcurrent()
        for connection in session.connections:
            if connection.reader is not None and connection.reader is not current:
                connection.reader.kill(block=False)
        log.warning("Event Socket to %s:%s lost: %s", self.host, self.port, reason)
        session.closed.set()

    # --- commands ------------------------------------------------------------------------------

    def _post(
        self,
        session: _Session,
        wire: str,
        slot: _ReplySlot,
        limit: float,
        connection: _Connection | None = None,
    ) -> None:
        """Put one command on the command connection (or ``connection``); its reply will go to
        ``slot``."""
        connection = connection or session.commands
        if not connection.send_lock.acquire(timeout=limit):
            # Nothing of this command left (the stuck send will drop the session).
            raise SwitchNotConnected(f"could not send within {limit} s (another send is stuck)")
        try:
            if not session.alive:
                raise SwitchNotConnected("not connected to FreeSWITCH")
            # Appended before the bytes leave, in send order: replies come back in this order.
            connection.replies.append((time.monotonic(), slot))
            data = wire.encode()
            try:
                # Nearly always the socket takes the whole command at once: no timer for that
                # (a gevent.Timeout per command was a few % of robocall's CPU at load).
                sent = _send_now(connection.sock, data)
                if sent < len(data):
                    with gevent.Timeout(limit):
                        connection.sock.sendall(data[sent:])
            except gevent.Timeout as err:
                # Part of the command may be on the wire: the stream is unusable.
                self._drop(session, f"send blocked for {limit} s")
                raise SwitchTimeout(f"could not send within {limit} s") from err
            except OSError as err:
                self._drop(session, f"send failed: {err}")
                raise SwitchDisconnected(f"send failed: {err}") from err
        finally:
            connection.send_lock.release()

    def _send(self, wire: str, timeout: float | None = None) -> Frame:
        """Send one command and wait for its reply, both within the command timeout.

        A :class:`SwitchTimeout` leaves the session up: the command was sent and the switch will
        still act on it; its late reply goes to the slot nobody waits on any more."""
        limit = self.command_timeout if timeout is None else timeout
        session = self._require_session()
        reply = gevent.event.AsyncResult()
        self._post(session, wire, reply, limit)
        frame = _wait(reply, limit, wire.split("\n", 1)[0][:80])
        assert isinstance(frame, Frame)
        return frame

    def api(self, command: str, *, timeout: float | None = None) -> str:
        """Run ``api <command>``; its body, or :class:`CommandFailed` when it starts with -ERR.

        FreeSWITCH sends no events on the connection while an api runs (with a command
        connection, only BACKGROUND_JOB results wait): use :meth:`bgapi` for anything slow."""
        frame = self._send(commands.api(command), timeout)
        text = frame.text
        if text.startswith("-ERR") or text.startswith("-USAGE"):
            raise CommandFailed(text.strip())
        return text

    def bgapi(self, command: str, job_uuid: str | None = None) -> BackgroundJob:
        """Start ``bgapi <command>`` with a Job-UUID we choose; wait on the returned job.

        Returns as soon as the command is on the wire: its reply only says "+OK Job-UUID", so
        nobody waits for it; a refusal fails the job instead. Raises
        :class:`SwitchNotConnected` when nothing was sent."""
        chosen = job_uuid or new_uuid()
        wire = commands.bgapi(command, chosen)
        session = self._require_session()
        result = gevent.event.AsyncResult()
        # Registered before sending: the BACKGROUND_JOB may arrive right behind the reply.
        session.jobs[chosen] = result
        try:
            self._post(session, wire, _JobReply(session.jobs, chosen, result), self.command_timeout)
        except SwitchError:
            session.jobs.pop(chosen, None)
            raise
        return BackgroundJob(chosen, result)

    def execute(
        self,
        uuid: str,
        app: str,
        arg: str,
        event_uuid: str | None = None,
        *,
        event_lock: bool = True,
    ) -> Execution:
        """Run a dialplan app on a channel via sendmsg; wait on the returned execution."""
        chosen = event_uuid or new_uuid()
        wire = commands.sendmsg_execute(uuid, app, arg, chosen, event_lock=event_lock)
        result = gevent.event.AsyncResult()
        session = self._require_session()
        session.add_execution(chosen, uuid, result)
        try:
            self._send_expecting_ok(wire)
        except SwitchTimeout:
            raise  # sent: the completion may still come, so the waiter stays registered
        except SwitchError:
            session.pop_execution(chosen)
            raise
        return Execution(uuid, chosen, result)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """Hang a channel up with a cause (sendmsg hangup). Returns once the command is on the
        wire: the channel's CHANNEL_HANGUP_COMPLETE confirms it, and a refusal (most often a
        channel already gone) is only logged. Waiting for the +OK cost every call a wait and
        a timer for an answer nobody acted on. Raises :class:`SwitchNotConnected` when nothing
        was sent."""
        wire = commands.sendmsg_hangup(uuid, cause)
        self._post(self._require_session(), wire, _LoggedReply(wire, logging.INFO),
                   self.command_timeout)

    def _send_expecting_ok(self, wire: str) -> None:
        frame = self._send(wire)
        if not frame.text.startswith("+OK"):
            raise CommandFailed(frame.text)

    def show_channels(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every live channel as FreeSWITCH's ``show channels as json`` rows."""
        text = self.api(commands.show_channels_json(), timeout=timeout)
        try:
            document = orjson.loads(text)
        except ValueError as err:
            raise ProtocolError(f"show channels answered no JSON: {text[:80]!r}") from err
        rows = document.get("rows", []) if isinstance(document, dict) else None
        if not isinstance(rows, list):
            raise ProtocolError("show channels JSON has no list of rows")
        return rows

    def _require_session(self) -> _Session:
        session = self._session
        if session is None or not session.alive:
            raise SwitchNotConnected("not connected to FreeSWITCH")
        return session

    # --- filters -----------------------------------------------------------------------------

    def set_event_filters(self, filters: Iterable[EventFilter]) -> None:
        """Let the switch send only the events some filter lets through (``filter <header>
        <value>`` on the events connection, FreeSWITCH 1.11.1): an event passes when one of
        its headers equals a filter's value (case-insensitive; ``/regex/`` values are searched
        for). No filters: every subscribed event. Events that match no filter never leave the
        switch, so a listener must not count on them; with a command connection, the command
        connection's BACKGROUND_JOB results are never filtered.

        Takes effect at once on a live session (new filters are added before old ones are
        deleted, so nothing they both let through is lost in between) and on every reconnect.
        Does not wait for the switch's replies (a refusal is logged)."""
        wanted: list[EventFilter] = []
        for header, value in filters:
            commands.event_filter(header, value)  # refuse a bad one here, not at connect
            if (header, value) not in wanted:
                wanted.append((header, value))
        if wanted and not self._split and _JOB_FILTER not in wanted:
            wanted.append(_JOB_FILTER)  # bgapi results share the one connection
        self._filters = wanted
        session = self._session
        if session is not None and session.alive:
            self._sync_filters(session)

    @property
    def event_filters(self) -> list[EventFilter]:
        """The filters asked for (each session holds them once it is up)."""
        return list(self._filters)

    def _sync_filters(self, session: _Session) -> None:
        wanted = list(self._filters)
        held = session.filters
        if wanted == held:
            return
        wires = [commands.event_filter(h, v) for h, v in wanted if (h, v) not in held]
        wires += [commands.event_filter_delete(h, v) for h, v in held if (h, v) not in wanted]
        session.filters = wanted
        for wire in wires:
            try:
                self._post(
                    session, wire, _LoggedReply(wire), self.command_timeout, session.events
                )
            except SwitchError as err:
                # The session is going (or gone): its successor sends every filter.
                log.warning("could not send %r: %s", wire.strip(), err)
                return

    # --- routing -----------------------------------------------------------------------------

    def channel_queue(self, uuid: str) -> gevent.queue.Queue:
        """The queue of one channel's events; register it BEFORE originating with that uuid.

        Unbounded on purpose: the reader must never wait for a slow call. Release it with
        :meth:`release_channel` when the call is over."""
        queue = self._queues.get(uuid)
        if queue is None:
            queue = self._queues[uuid] = gevent.queue.Queue()
        return queue

    def release_channel(self, uuid: str) -> None:
        """Stop routing a channel's events (its queue keeps what it already holds)."""
        self._queues.pop(uuid, None)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event, in the reader: quick, and never blocking."""
        self._listeners.append(listener)

    def remove_event_listener(self, listener: EventListener) -> None:
        """Stop calling a listener added with :meth:`add_event_listener`."""
        self._listeners.remove(listener)
