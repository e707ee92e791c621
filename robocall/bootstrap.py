"""The composition root: Settings -> database -> repository -> switch -> dispatcher -> app.

Everything else receives its dependencies from here (clocks and id generators included), so
tests build the same objects with their own. ``build_api`` is the REST layer alone (what the
API tests run); ``build_service`` is all of robocall in one process: the API and the dialer
share one gevent hub, and there is one dialer per process (docs/design.md, "The way data flows").
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import falcon
import gevent
import gevent.event
from prometheus_client import CollectorRegistry

from robocall import dashboard
from robocall.amd.detection import DetectionSettings
from robocall.api.app import create_app
from robocall.api.auth import RateLimiter
from robocall.api.control import LinesControl
from robocall.calls.dialplan import DialPlan
from robocall.calls.prefetch import FirstPrompts
from robocall.calls.programs import ProgramCache
from robocall.calls.prompts import Prompts
from robocall.calls.runner import CallRunner, RunnerSettings
from robocall.calls.webhook_delivery import DeliveryPolicy, WebhookWorker
from robocall.calls.webhook_targets import Resolver, TargetPolicy, system_resolver
from robocall.calls.webhooks import WebhookObserver, new_webhook_secret
from robocall.config import Settings
from robocall.dispatch.dispatcher import Dispatcher
from robocall.dispatch.health import SwitchHealth
from robocall.dispatch.lease import LeaseKeeper
from robocall.dispatch.lines import DEFAULT_SETTLE_SECONDS, LineBook
from robocall.dispatch.pacing import SwitchLimits
from robocall.dispatch.pool import PoolMember, SwitchPool
from robocall.dispatch.recovery import RecoveryReport, recover_calls
from robocall.dispatch.sending import SendGate
from robocall.errors import ConfigError, NotFound, StoreError, SwitchError
from robocall.esl.client import EslClient
from robocall.logs import CallEventLog
from robocall.metrics import (
    CallMetrics,
    DispatchTimer,
    LiveCollector,
    MetricsResource,
    SwitchReading,
)
from robocall.store.db import open_database
from robocall.store.migrations import migrate
from robocall.store.records import Organization
from robocall.store.repo import Repo, utc_now
from robocall.tts.cache import TtsCache

if TYPE_CHECKING:
    from robocall.testing import FakeSwitch

log = logging.getLogger(__name__)

DEFAULT_CPS = 5.0
RECOVERY_RETRY_SECONDS = 5.0


def new_org_id() -> str:
    """A fresh organization id; also its default line value (accountcode), so ESL-safe."""
    return f"org_{secrets.token_hex(6)}"


def new_api_key() -> str:
    """A fresh API key: 256 random bits, URL-safe."""
    return f"rk_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Api:
    """The running parts of the API: its store and its WSGI app."""

    repo: Repo
    app: falcon.App[Any, Any]


def open_repo(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, run_migrations: bool = True
) -> Repo:
    """The repository over the configured database, migrated to the current schema."""
    database = open_database(settings.resolved_database_url)
    if run_migrations:
        migrate(database)
    return Repo(database, clock=clock)


def build_api(
    settings: Settings,
    *,
    languages: Iterable[str],
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    repo: Repo | None = None,
    on_request_stored: Callable[[str], None] = lambda org_id: None,
    prompt_lookup: Callable[[str], Path | None] | None = None,
    lines_control: LinesControl | None = None,
    resolver: Resolver = system_resolver,
) -> Api:
    """The API over ``settings``' database (or ``repo``), checking ``lang`` against ``languages``.

    The caller passes the languages (``robocall.tts.voices.available_languages()`` in
    production) so tests need not depend on which TTS engines a machine has. ``resolver``
    looks up a ``callbackUrl``'s host (tests give names that resolve without a network).
    """
    targets = webhook_targets(settings, resolver)
    repo = repo if repo is not None else open_repo(settings, clock=clock)
    app = create_app(
        repo=repo,
        languages=frozenset(languages),
        max_destinations=settings.max_destinations,
        max_body_bytes=settings.max_body_bytes,
        limiter=RateLimiter(settings.rate_limit_per_minute, clock=monotonic),
        on_request_stored=on_request_stored,
        recordings_dir=settings.recordings_dir,
        prompt_lookup=prompt_lookup,
        lines_control=lines_control,
        webhook_targets=targets,
    )
    return Api(repo=repo, app=app)


def webhook_targets(settings: Settings, resolver: Resolver = system_resolver) -> TargetPolicy:
    """Where webhooks may go: public addresses, and the networks the operator allowed."""
    return TargetPolicy(allowed_networks=settings.webhook_allowed_networks, resolver=resolver)


def create_organization(
    repo: Repo,
    name: str,
    *,
    lines: int,
    cps: float = DEFAULT_CPS,
    new_id: Callable[[], str] = new_org_id,
) -> Organization:
    """Store a new organization with ``lines`` concurrent calls and ``cps`` new calls/second
    (and its webhook signing secret); ConfigError if ``name`` is empty."""
    name = check_name(name, "the organization's name")
    org = repo.create_organization(new_id(), name, max_concurrent_calls=lines, cps=cps)
    webhook_secret(repo, org.id)
    return org


def webhook_secret(
    repo: Repo,
    org_id: str,
    *,
    rotate: bool = False,
    new_secret: Callable[[], str] = new_webhook_secret,
) -> str:
    """The organization's webhook signing secret, made if it has none (or ``rotate``).

    Kept as is, not hashed like API keys: signing needs the secret itself, and the
    organization reads it again whenever it sets up a receiver (docs/webhooks.md).
    """
    current = None if rotate else repo.webhook_secret(org_id)
    if current is not None:
        return current
    if repo.get_organization(org_id) is None:
        raise NotFound(f"no organization {org_id}")
    secret = new_secret()
    repo.set_webhook_secret(org_id, secret)
    return secret


def create_api_key(repo: Repo, org_id: str, *, new_key: Callable[[], str] = new_api_key) -> str:
    """A new key for ``org_id``; only its SHA-256 is stored, so this is the one time it is seen."""
    return issue_api_key(repo, org_id, new_key=new_key).key


@dataclass(frozen=True)
class IssuedKey:
    """A key as it is made: its id (what it is listed and revoked by) and the key, seen once."""

    id: int
    key: str


def issue_api_key(
    repo: Repo, org_id: str, *, new_key: Callable[[], str] = new_api_key
) -> IssuedKey:
    """A new API key for ``org_id`` and its id (NotFound if there is no such organization)."""
    key = new_key()
    return IssuedKey(repo.add_api_key(org_id, key), key)


def new_operator_key() -> str:
    """A fresh operator key: 256 random bits, URL-safe, told apart from API keys by ``ro_``."""
    return f"ro_{secrets.token_urlsafe(32)}"


def issue_operator_key(
    repo: Repo, name: str, *, new_key: Callable[[], str] = new_operator_key
) -> IssuedKey:
    """A new operator key held by ``name`` (not empty); only its SHA-256 is stored."""
    key = new_key()
    return IssuedKey(repo.add_operator_key(check_name(name, "the key holder's name"), key), key)


MAX_NAME_CHARS = 200


def check_name(name: str, what: str) -> str:
    """``name`` without surrounding spaces; ConfigError if that leaves nothing or too much."""
    stripped = name.strip()
    if not stripped:
        raise ConfigError(f"{what} is empty; give a name")
    if len(stripped) > MAX_NAME_CHARS or any(ord(ch) < 0x20 for ch in stripped):
        raise ConfigError(f"{what} must be 1 to {MAX_NAME_CHARS} printable characters")
    return stripped


@dataclass(frozen=True)
class SwitchAddress:
    host: str
    port: int
    password: str
    name: str = ""  # its name in a pool: the URL's #fragment, or HOST:PORT

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


_SWITCH_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def parse_switch_url(url: str) -> SwitchAddress:
    """``esl://:PASSWORD@HOST:PORT[#NAME]`` -> where and how to reach FreeSWITCH's Event
    Socket, and the switch's name in a pool (default ``HOST:PORT``)."""
    parts = urlsplit(url.strip())
    if parts.scheme != "esl" or not parts.hostname or parts.password is None:
        raise ConfigError(f"--switch {url!r}: expected fake or esl://:PASSWORD@HOST:PORT")
    try:
        port = parts.port or 8021
    except ValueError as err:
        raise ConfigError(f"--switch {url!r}: the port is not a number") from err
    name = unquote(parts.fragment) or f"{parts.hostname}:{port}"
    if not _SWITCH_NAME.match(name):
        raise ConfigError(
            f"--switch {url!r}: a switch's name (#NAME) is 1-64 of A-Z a-z 0-9 _ . : -"
        )
    return SwitchAddress(parts.hostname, port, unquote(parts.password), name)


def parse_switch_urls(text: str) -> list[SwitchAddress]:
    """A comma-separated list of ``esl://`` URLs (``ROBOCALL_SWITCH``, or ``--switch`` given
    several times): the pool of switches, in order. ConfigError on a bad one or a name used
    twice."""
    addresses = [parse_switch_url(url) for url in text.split(",") if url.strip()]
    if not addresses:
        raise ConfigError("--switch: no switch given; expected esl://:PASSWORD@HOST:PORT")
    names = [address.name for address in addresses]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"--switch: two switches are named {name!r}; name each with #NAME")
    return addresses


@dataclass
class Service:
    """All of robocall in one process: the API, the switch connections, the dispatcher."""

    settings: Settings
    api: Api
    pool: SwitchPool
    dispatcher: Dispatcher
    tts: TtsCache
    lease: LeaseKeeper
    fake_switch: FakeSwitch | None = None
    webhooks: WebhookWorker | None = None
    recovery: RecoveryReport | None = None
    dispatching: gevent.event.Event = field(default_factory=gevent.event.Event)
    _starting: gevent.Greenlet | None = None

    @property
    def switch(self) -> EslClient:
        """The first switch's client (the only one without a pool)."""
        return self.pool.first.client

    def start(self) -> None:
        """Take the node's lease (NodeBusy, at once, while another live process holds it);
        connect to every switch (in the background, with backoff); as each connects, settle
        the calls a crash left unfinished on it; dispatching starts once one switch is ready,
        and a switch takes new calls only once its own are settled. The API serves meanwhile:
        requests queue up and are dialled as soon as dispatching starts."""
        self.lease.take()
        for member in self.pool:
            member.client.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self._starting = gevent.spawn(self._recover_then_dispatch)

    def _recover_then_dispatch(self) -> None:
        while not self.pool.first.client.closed:
            for member in self.pool:
                if not member.recovered and member.client.connected:
                    self._recover(member)
            if not self.dispatching.is_set() and self.pool.any_placeable():
                self.dispatcher.start()
                # Events before the dispatcher listened are not in its line book: list them now.
                gevent.spawn(self.dispatcher.resync)
                self.dispatching.set()
            if all(member.recovered for member in self.pool):
                return
            gevent.sleep(0.2)

    def _recover(self, member: PoolMember) -> None:
        """Settle this node's unfinished calls on ``member`` (the calls an earlier run left
        there); then it may take new calls. A call with no switch, or one no longer in the
        pool, is the first switch's to settle."""
        first = member is self.pool.first
        names = set(self.pool.names)
        try:
            self.dispatcher.read_switch_limits(member)
            report = recover_calls(
                self.api.repo,
                member.client,
                node_id=self.settings.resolved_node_id,
                observers=self.dispatcher.runner.observers,
                belongs=lambda call: call.switch == member.name or (
                    first and call.switch not in names),
            )
        except (SwitchError, StoreError) as err:
            # Nothing is placed on a switch before its recovery is done: a call left dialing
            # there must not be counted out of its line or dialled again.
            log.warning("crash recovery on switch %s waits for it and the store: %s",
                        member.name, err)
            gevent.sleep(1.0)
            return
        self.recovery = report if self.recovery is None else self.recovery.merged(report)
        member.recovered = True
        if self.dispatching.is_set():
            self.dispatcher.wake()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop dialling, let live calls finish for up to ``grace_seconds``, then hang up the
        ones still live and record them final (``ROBOCALL_SHUTDOWN``); close everything and
        give the node's lease up, so the next start finds nothing to recover."""
        if self._starting is not None:
            self._starting.kill()
        self.dispatcher.stop(grace_seconds)
        if self.webhooks is not None:  # after the calls: their last events are in the outbox
            self.webhooks.stop()
        self.lease.release()
        for member in self.pool:
            member.client.close()
        if self.fake_switch is not None:
            self.fake_switch.stop()
        self.tts.close()
        self.api.repo.close()


def build_service(
    settings: Settings,
    *,
    languages: Iterable[str],
    fake_switch: FakeSwitch | None = None,
    tts: TtsCache | None = None,
    repo: Repo | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    resolver: Resolver = system_resolver,
) -> Service:
    """Wire robocall over ``settings``. ``--switch fake`` runs a FakeSwitch in-process (its
    callees from ``--callees``); tests may pass their own ``fake_switch`` and ``tts``, and a
    ``resolver`` for webhook hosts. Several ``esl://`` URLs make a pool (docs/pool.md)."""
    languages = frozenset(languages)
    # Settings that can be wrong are checked before anything starts (or logs): a bad template
    # or allow-list is one line on the console, not a half-started service.
    targets = webhook_targets(settings, resolver)
    dial_plan = DialPlan(
        number_template=settings.dial_template,
        extension_template=settings.extension_template,
        gateway=settings.gateway,
        domain=settings.domain,
    )
    addresses = parse_switch_urls(settings.switch) if settings.switch != "fake" else []
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    repo = repo if repo is not None else open_repo(settings)
    if settings.switch == "fake":
        if fake_switch is None:
            fake_switch = _start_fake_switch(settings)
        addresses = [SwitchAddress(*fake_switch.address, fake_switch.password, "fake")]
    tts = tts if tts is not None else TtsCache.from_settings(settings)
    pool = _switch_pool(addresses, clock=monotonic)
    # Before each switch tells its own limits: FreeSWITCH's defaults (the dispatcher reads
    # them before it dials anything, and again on every reconnect).
    gate = SendGate(
        SwitchLimits().legs_per_second(settings.switch_cps), clock=monotonic,
        switches=pool.names,
    )
    lease = LeaseKeeper(repo, settings.resolved_node_id, clock=monotonic)
    gate.may_send = lease.fresh
    prompts = Prompts(tts)
    programs = ProgramCache(languages)
    runner = CallRunner(
        pool.first.client,
        repo,
        prompts,
        dial_plan,
        RunnerSettings(
            originate_timeout_seconds=settings.originate_timeout_seconds,
            transfer_timeout_seconds=settings.transfer_timeout_seconds,
            recordings_dir=settings.recordings_dir,
            # read-leg recordings for answering-machine detection: FreeSWITCH writes them here
            # and robocall reads them, so like the call recordings this is a shared directory
            detection=DetectionSettings(directory=settings.recordings_dir / "amd"),
        ),
        send_gate=gate,
        clock=clock,
        switches=pool.clients,
    )
    first_prompts = FirstPrompts(repo, prompts, programs, clock=monotonic)
    dispatcher = Dispatcher(
        repo,
        pool,
        runner,
        programs,
        gate,
        switch_cps=settings.switch_cps or None,
        clock=monotonic,
        wall_clock=clock,
        node_id=settings.resolved_node_id,
        lease_token=lease.token,
        first_prompts=first_prompts,
        health=pool.first.health,
    )
    first_prompts.on_ready = dispatcher.wake
    dispatcher.event_filters = settings.event_filters
    for member in pool:
        member.client.on_connected = functools.partial(_switch_connected, dispatcher, member)
    webhooks = WebhookWorker(
        repo,
        DeliveryPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            retention_seconds=settings.webhook_retention_days * 86400.0,
            targets=targets,
        ),
        secret_for=lambda org_id: webhook_secret(repo, org_id),
        clock=clock,
    )
    runner.observers.add(WebhookObserver(repo, clock=clock, wake=webhooks.wake))
    api = build_api(
        settings,
        languages=languages,
        repo=repo,
        monotonic=monotonic,
        on_request_stored=dispatcher.calls_stored,
        prompt_lookup=tts.lookup,
        lines_control=dispatcher,
        resolver=resolver,
    )
    _install_watching(api.app, repo=repo, pool=pool, runner=runner, dispatcher=dispatcher)
    lease.on_lost = dispatcher.lease_lost
    return Service(settings, api, pool, dispatcher, tts, lease, fake_switch, webhooks)


def _switch_pool(addresses: list[SwitchAddress], *, clock: Callable[[], float]) -> SwitchPool:
    """One Event Socket client per switch, each with its line book and health."""
    members = []
    for address in addresses:
        health = SwitchHealth(clock=clock)
        # Commands on a connection of their own: their replies never wait behind the events.
        client = EslClient(
            address.host,
            address.port,
            address.password,
            command_connection=True,
            on_reply=health.observe_reply,
        )
        client.add_event_listener(health.observe)
        members.append(
            PoolMember(address.name, client, LineBook(clock=clock), health, clock=clock)
        )
    return SwitchPool(members)


def _switch_connected(dispatcher: Dispatcher, member: PoolMember, _client: EslClient) -> None:
    """A switch (re)connected. The supervisor greenlet must not wait on a command: read its
    limits and list its channels in greenlets of their own; list them once more after the
    settle time, so a channel that ended during the outage, too young at the first listing
    to be released, is not left holding its line for a minute."""
    member.reconnected()  # nothing placed there until its limits are read
    gevent.spawn(dispatcher.read_switch_limits, member)
    gevent.spawn(dispatcher.resync, member)
    gevent.spawn_later(DEFAULT_SETTLE_SECONDS + 0.5, dispatcher.resync, member)


def _install_watching(
    app: falcon.App[Any, Any],
    *,
    repo: Repo,
    pool: SwitchPool,
    runner: CallRunner,
    dispatcher: Dispatcher,
) -> None:
    """What people watch robocall by: a log line per call, the dashboard at ``/`` and
    ``/metrics`` (a registry of this app's own, fed by a call observer and the dispatcher's
    timing hooks)."""
    runner.observers.add(CallEventLog())
    registry = CollectorRegistry()
    runner.observers.add(CallMetrics(registry))
    timer = DispatchTimer(registry)
    dispatcher.on_line_freed = timer.line_freed
    dispatcher.on_dispatch = timer.dispatched
    dispatcher.on_queue_drained = timer.queue_drained
    registry.register(
        LiveCollector(
            line_reports=dispatcher.reports,
            queued_calls=repo.queued_calls_by_organization,
            switch_connected=lambda: all(member.client.connected for member in pool),
            switches=lambda: [
                SwitchReading(
                    name=member.name, connected=member.client.connected,
                    sessions=member.sessions_used, sessions_cap=member.limits.sessions_cap,
                    idle_cpu=member.health.idle_cpu, rate_factor=member.health_factor,
                )
                for member in pool
            ],
        )
    )
    app.add_route("/metrics", MetricsResource(registry))
    dashboard.install(app, repo=repo, line_report=dispatcher.report)


def _start_fake_switch(settings: Settings) -> FakeSwitch:
    from robocall.testing import CalleeBook, FakeSwitch

    callees = CalleeBook.from_file(settings.callees_file) if settings.callees_file else None
    fake = FakeSwitch(callees=callees).start()
    log.info("FakeSwitch (scripted callees, no real calls) on %s:%s", *fake.address)
    return fake


