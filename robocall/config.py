"""Settings: one frozen value built from the environment and command-line flags.

This is the only module that reads ``os.environ``; everything else receives a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from robocall.errors import ConfigError

DEFAULT_DATA_DIR = Path("robocall-data")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    """Everything robocall can be configured with. Field docs say which variable sets each."""

    data_dir: Path = DEFAULT_DATA_DIR  # ROBOCALL_DATA_DIR
    database_url: str = ""  # ROBOCALL_DATABASE_URL; empty: SQLite file in data_dir
    listen: str = "127.0.0.1:8080"  # ROBOCALL_LISTEN
    # ROBOCALL_SWITCH: esl://:PASSWORD@HOST:PORT[#NAME] or "fake"; several URLs, separated by
    # commas, make a pool of switches (docs/pool.md)
    switch: str = "fake"
    callees_file: Path | None = None  # ROBOCALL_CALLEES: FakeSwitch scripted callees (JSON)
    dial_template: str = "sofia/gateway/{gateway}/{number}"  # ROBOCALL_DIAL_TEMPLATE
    extension_template: str = "user/{ext}@{domain}"  # ROBOCALL_EXTENSION_TEMPLATE
    gateway: str = "robocall"  # ROBOCALL_GATEWAY: the trunk gateway named in dial_template
    domain: str = "127.0.0.1"  # ROBOCALL_DOMAIN: the PBX domain for extension transfers
    max_destinations: int = 100_000  # ROBOCALL_MAX_DESTINATIONS
    max_body_bytes: int = 64 * 1024 * 1024  # ROBOCALL_MAX_BODY_BYTES
    rate_limit_per_minute: int = 600  # ROBOCALL_RATE_LIMIT: requests per API key per minute
    log_json: bool = False  # ROBOCALL_LOG_JSON
    # ROBOCALL_EVENT_FILTERS: ask each switch for only the events robocall reads (its own legs,
    # its organizations' lines, HEARTBEAT, SHUTDOWN: docs/load.md); false: every channel's.
    event_filters: bool = True
    # ROBOCALL_TTS_BASE_URL: http://HOST:PORT where FreeSWITCH fetches rendered messages
    # (GET /v1/tts/<key>.wav through mod_http_cache); empty: it reads them from the shared disk.
    originate_timeout_seconds: int = 30  # ROBOCALL_ORIGINATE_TIMEOUT: ring this long at most
    transfer_timeout_seconds: int = 30  # ROBOCALL_TRANSFER_TIMEOUT: a transfer rings this long
    # ROBOCALL_SWITCH_CPS: legs per second at most. Unset: 90 % of the switch's own
    # sessions-per-second, read from it on connect; a value here can only lower that.
    switch_cps: float = 0.0
    tts_base_url: str = ""
    tts_sample_rate: int = 8000  # ROBOCALL_TTS_SAMPLE_RATE: 8000 or 16000
    tts_concurrency: int = 2  # ROBOCALL_TTS_CONCURRENCY: renders at once (one per core)
    # The client commands (submit, status) speak to a running API over HTTP.
    api_url: str = "http://127.0.0.1:8080"  # ROBOCALL_URL
    api_key: str = ""  # ROBOCALL_API_KEY
    # Webhooks: attempts per event, the first retry's wait (doubling after each failure: 8
    # attempts from 30 s span about an hour), and the bound on one delivery.
    webhook_max_attempts: int = 8  # ROBOCALL_WEBHOOK_MAX_ATTEMPTS
    webhook_backoff_seconds: float = 30.0  # ROBOCALL_WEBHOOK_BACKOFF
    webhook_timeout_seconds: float = 10.0  # ROBOCALL_WEBHOOK_TIMEOUT
    # ROBOCALL_WEBHOOK_ALLOW_NETWORKS: networks (CIDR, comma-separated) a callbackUrl may point
    # into although they are not public, e.g. 10.20.0.0/16 for an on-prem receiver. Empty:
    # webhooks go to public addresses only (never loopback, private, link-local, multicast).
    webhook_allow_networks: str = ""
    # ROBOCALL_WEBHOOK_RETENTION_DAYS: delivered and given-up webhook events (the delivery
    # log) are deleted once they are this old.
    webhook_retention_days: float = 30.0
    # ROBOCALL_NODE_ID: this dialer's name in a shared database; after a crash a node recovers
    # only the calls it claimed. Empty: the host name (set it when two nodes share a host).
    node_id: str = ""
    # ROBOCALL_SHUTDOWN_GRACE: on SIGTERM, live calls get this long to finish; then they are
    # hung up and recorded failed with hangupCause ROBOCALL_SHUTDOWN.
    shutdown_grace_seconds: float = 30.0

    @property
    def resolved_database_url(self) -> str:
        """The database URL to open: the configured one, or SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'robocall.db').resolve()}"

    @property
    def resolved_node_id(self) -> str:
        """This node's id: the configured one, or the host name."""
        return self.node_id or socket.gethostname()

    @property
    def webhook_allowed_networks(self) -> tuple[IPNetwork, ...]:
        """``webhook_allow_networks`` parsed; ConfigError naming the setting if one is bad."""
        networks: list[IPNetwork] = []
        for part in (p.strip() for p in self.webhook_allow_networks.split(",")):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as err:
                raise ConfigError(
                    f"ROBOCALL_WEBHOOK_ALLOW_NETWORKS: {part!r} is not a network ({err})"
                ) from err
        return tuple(networks)

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def tts_cache_dir(self) -> Path:
        return self.data_dir / "tts-cache"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; ``None`` values are ignored (unset flags)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_ENV: dict[str, tuple[str, type]] = {
    "ROBOCALL_DATA_DIR": ("data_dir", Path),
    "ROBOCALL_DATABASE_URL": ("database_url", str),
    "ROBOCALL_LISTEN": ("listen", str),
    "ROBOCALL_SWITCH": ("switch", str),
    "ROBOCALL_CALLEES": ("callees_file", Path),
    "ROBOCALL_DIAL_TEMPLATE": ("dial_template", str),
    "ROBOCALL_EXTENSION_TEMPLATE": ("extension_template", str),
    "ROBOCALL_GATEWAY": ("gateway", str),
    "ROBOCALL_DOMAIN": ("domain", str),
    "ROBOCALL_MAX_DESTINATIONS": ("max_destinations", int),
    "ROBOCALL_MAX_BODY_BYTES": ("max_body_bytes", int),
    "ROBOCALL_RATE_LIMIT": ("rate_limit_per_minute", int),
    "ROBOCALL_LOG_JSON": ("log_json", bool),
    "ROBOCALL_EVENT_FILTERS": ("event_filters", bool),
    "ROBOCALL_ORIGINATE_TIMEOUT": ("originate_timeout_seconds", int),
    "ROBOCALL_TRANSFER_TIMEOUT": ("transfer_timeout_seconds", int),
    "ROBOCALL_SWITCH_CPS": ("switch_cps", float),
    "ROBOCALL_TTS_BASE_URL": ("tts_base_url", str),
    "ROBOCALL_TTS_SAMPLE_RATE": ("tts_sample_rate", int),
    "ROBOCALL_TTS_CONCURRENCY": ("tts_concurrency", int),
    "ROBOCALL_URL": ("api_url", str),
    "ROBOCALL_API_KEY": ("api_key", str),
    "ROBOCALL_WEBHOOK_MAX_ATTEMPTS": ("webhook_max_attempts", int),
    "ROBOCALL_WEBHOOK_BACKOFF": ("webhook_backoff_seconds", float),
    "ROBOCALL_WEBHOOK_TIMEOUT": ("webhook_timeout_seconds", float),
    "ROBOCALL_WEBHOOK_ALLOW_NETWORKS": ("webhook_allow_networks", str),
    "ROBOCALL_WEBHOOK_RETENTION_DAYS": ("webhook_retention_days", float),
    "ROBOCALL_NODE_ID": ("node_id", str),
    "ROBOCALL_SHUTDOWN_GRACE": ("shutdown_grace_seconds", float),
}


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables (``os.environ`` unless given)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (name, kind) in _ENV.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        values[name] = _convert(variable, raw, kind)
    return Settings(**values)


def _convert(variable: str, raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{variable}={raw!r}: expected true or false")
    if kind is int:
        try:
            value = int(raw)
        except ValueError as err:
            raise ConfigError(f"{variable}={raw!r}: expected a whole number") from err
        if value <= 0:
            raise ConfigError(f"{variable}={raw!r}: must be positive")
        return value
    if kind is float:
        try:
            number = float(raw)
        except ValueError as err:
            raise ConfigError(f"{variable}={raw!r}: expected a number") from err
        if number <= 0:
            raise ConfigError(f"{variable}={raw!r}: must be positive")
        return number
    return kind(raw)
