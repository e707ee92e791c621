"""The command line: ``robocall serve | migrate | org create | key create``.

The console script enters here, so gevent's patching is the first thing this module does
(STYLE habit 14); ``python -m robocall`` patches in ``__main__`` before importing it.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from robocall import bootstrap, config, logs  # noqa: E402
from robocall.api.server import make_server  # noqa: E402
from robocall.errors import ConfigError, NotFound, RobocallError  # noqa: E402

log = logging.getLogger("robocall")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_FAILED = 1
EXIT_USAGE = 2
SHUTDOWN_GRACE_SECONDS = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        settings = config.from_env().with_overrides(
            database_url=args.database, data_dir=args.data_dir
        )
        logs.configure(json_lines=settings.log_json)
        return int(args.run(args, settings))
    except ConfigError as err:
        print(f"robocall: configuration error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RobocallError as err:
        print(f"robocall: error: {err}", file=sys.stderr)
        return EXIT_FAILED


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
        log.info("stopping: no new calls; live calls get %s s to finish", SHUTDOWN_GRACE_SECONDS)
    finally:
        server.stop(timeout=5)
        service.stop(SHUTDOWN_GRACE_SECONDS)
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


def _check_switch(switch: str) -> None:
    if switch != "fake":
        bootstrap.parse_switch_url(switch)


def _safe_url(settings: config.Settings) -> str:
    url = settings.resolved_database_url
    scheme, sep, rest = url.partition("://")
    if "@" in rest:  # never log a password
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", metavar="URL", help="sqlite:///PATH or postgresql://...")
    common.add_argument("--data-dir", type=Path, metavar="DIR", help="default ./robocall-data")

    parser = argparse.ArgumentParser(prog="robocall", description="Self-hosted Robo Call API")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    key = commands.add_parser("key", help="API keys").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    key_create = key.add_parser("create", parents=[common], help="create one; prints it once")
    key_create.add_argument("org_id")
    key_create.set_defaults(run=_key_create)
    return parser
