"""Running and administering robocall: ``serve``, ``migrate``, ``org create``, ``key create``."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from robocall import bootstrap, config
from robocall.api.server import make_server
from robocall.errors import ConfigError, NotFound

log = logging.getLogger("robocall")


def _serve(args: argparse.Namespace, settings: config.Settings) -> int:
    from robocall.tts.voices import available_languages

    settings = settings.with_overrides(
        listen=args.listen, switch=args.switch, callees_file=args.callees
    )
    _check_switch(settings.switch)
    if settings.callees_file is not None and settings.switch != "fake":
        raise ConfigError("--callees scripts FakeSwitch's callees: use it with --switch fake")
    service = bootstrap.build_service(settings, languages=available_languages())
    server = make_server(service.api.app, settings.listen, access_log=True)
    host, port = server.address[:2]
    log.info("robocall API on http://%s:%s (database %s)", host, port, _safe_url(settings))
    if service.fake_switch is not None:
        log.warning("--switch fake: calls go to FakeSwitch's scripted callees, no one is dialled")
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    service.start()
    server.start()
    try:
        stopping.wait()
        log.info("stopping: no new calls; live calls get %s s to finish",
                 settings.shutdown_grace_seconds)
    finally:
        server.stop(timeout=5)
        service.stop(settings.shutdown_grace_seconds)
    return 0


def _migrate(args: argparse.Namespace, settings: config.Settings) -> int:
    from robocall.store.db import open_database
    from robocall.store.migrations import migrate

    applied = migrate(open_database(settings.resolved_database_url))
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "schema is current")
    return 0


def _org_create(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.lines < 1:
        raise ConfigError("--lines must be at least 1")
    if args.cps <= 0:
        raise ConfigError("--cps must be more than 0")
    repo = bootstrap.open_repo(settings)
    try:
        org = bootstrap.create_organization(repo, args.name, lines=args.lines, cps=args.cps)
    finally:
        repo.close()
    print(org.id)
    return 0


def _key_create(args: argparse.Namespace, settings: config.Settings) -> int:
    repo = bootstrap.open_repo(settings)
    try:
        key = bootstrap.create_api_key(repo, args.org_id)
    except NotFound as err:
        raise NotFound(f"{err}; create one with `robocall org create NAME --lines N`") from err
    finally:
        repo.close()
    print(key)
    return 0


def _org_secret(args: argparse.Namespace, settings: config.Settings) -> int:
    repo = bootstrap.open_repo(settings)
    try:
        secret = bootstrap.webhook_secret(repo, args.org_id, rotate=args.rotate)
    finally:
        repo.close()
    print(secret)
    return 0


def _check_switch(switch: str) -> None:
    if switch != "fake":
        bootstrap.parse_switch_url(switch)


def _safe_url(settings: config.Settings) -> str:
    return without_password(settings.resolved_database_url)


def without_password(url: str) -> str:
    """``url`` with any ``user:password@`` removed, to be shown or logged."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:  # never log a password
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``serve``, ``migrate``, ``org`` and ``key`` to the ``robocall`` parser."""

    serve = commands.add_parser("serve", parents=[common], help="run the API")
    serve.add_argument("--listen", metavar="HOST:PORT", help="default 127.0.0.1:8080")
    serve.add_argument("--switch", metavar="fake|esl://:PASSWORD@HOST:PORT")
    serve.add_argument(
        "--callees", type=Path, metavar="FILE", help="FakeSwitch's scripted callees (JSON)"
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", parents=[common], help="bring the schema up to date")
    migrate.set_defaults(run=_migrate)

    org = commands.add_parser("org", help="organizations").add_subparsers(
        dest="org_command", required=True, metavar="ACTION"
    )
    org_create = org.add_parser("create", parents=[common], help="create one; prints its id")
    org_create.add_argument("name")
    org_create.add_argument("--lines", type=int, required=True, help="concurrent calls")
    org_create.add_argument(
        "--cps", type=float, default=bootstrap.DEFAULT_CPS, help="new calls per second"
    )
    org_create.set_defaults(run=_org_create)
    org_secret = org.add_parser(
        "secret", parents=[common], help="print the webhook signing secret (made if none)"
    )
    org_secret.add_argument("org_id")
    org_secret.add_argument(
        "--rotate", action="store_true", help="replace it; receivers must switch to the new one"
    )
    org_secret.set_defaults(run=_org_secret)

    key = commands.add_parser("key", help="API keys").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    key_create = key.add_parser("create", parents=[common], help="create one; prints it once")
    key_create.add_argument("org_id")
    key_create.set_defaults(run=_key_create)
