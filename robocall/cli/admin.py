"""Running and administering robocall: ``serve``, ``migrate``, and the operator's commands
over organizations (``org create|list|set-lines|secret``), their API keys (``key
create|list|revoke``) and operator keys (``operator key create|list|revoke``).

These commands are the operator's: they act on the database directly, so whoever runs them can
do anything. A tenant manages its own calls with its API key over HTTP; what the operator sells
it — its lines, pace and line rule — only an operator changes (here, or over HTTP with an
operator key).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from robocall import bootstrap, config
from robocall.api.server import bind_listener, make_server
from robocall.errors import ConfigError, InputError, NotFound, RobocallError
from robocall.flow.model import LinesChange
from robocall.flow.parse import parse_line_rule
from robocall.store.access import KeyRecord
from robocall.store.repo import Repo

log = logging.getLogger("robocall")

# An organization's lines and pace, as PUT /v1/organizations/{orgId}/lines accepts them.
MAX_LINES = 100_000
MIN_CPS, MAX_CPS = 0.1, 1000.0


def _serve(args: argparse.Namespace, settings: config.Settings) -> int:
    from robocall.tts.voices import available_languages

    settings = settings.with_overrides(
        listen=args.listen, switch=joined_switches(args.switch), callees_file=args.callees
    )
    _check_switch(settings.switch)
    if settings.callees_file is not None and settings.switch != "fake":
        raise ConfigError("--callees scripts FakeSwitch's callees: use it with --switch fake")
    # The port first: one that is taken is refused before anything else starts or logs.
    listener = bind_listener(settings.listen)
    try:
        with _start_errors():
            service = bootstrap.build_service(settings, languages=available_languages())
    except BaseException:
        listener.close()
        raise
    server = make_server(service.api.app, listener, access_log=True)
    host, port = server.address[:2]
    log.info("robocall API on http://%s:%s (database %s)", host, port, _safe_url(settings))
    if service.fake_switch is not None:
        log.warning("--switch fake: calls go to FakeSwitch's scripted callees, no one is dialled")
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    with _start_errors():
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


@contextmanager
def _start_errors() -> Iterator[None]:
    """The one place where whatever stops ``serve`` from starting becomes one line and exit 2
    (docs/cli.md): robocall's own errors (a database it cannot open, a node id another live
    process holds) and what the system refuses (a directory it cannot create)."""
    try:
        yield
    except ConfigError:
        raise
    except RobocallError as err:
        raise ConfigError(f"cannot start: {err}") from err
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise ConfigError(f"cannot start: {where}{err.strerror or err}") from err


def _migrate(args: argparse.Namespace, settings: config.Settings) -> int:
    from robocall.store.db import open_database
    from robocall.store.migrations import migrate

    applied = migrate(open_database(settings.resolved_database_url))
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "schema is current")
    return 0


def _org_create(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.lines < 1:
        raise ConfigError("--lines must be at least 1")
    _check_lines(args.lines, args.cps)
    bootstrap.check_name(args.name, "the organization's name")
    with _repo(settings) as repo:
        org = bootstrap.create_organization(repo, args.name, lines=args.lines, cps=args.cps)
    print(org.id)
    return 0


def _org_list(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        organizations = repo.list_organizations()
    _print_rows(
        ("ID", "NAME", "LINES", "CPS", "LINE RULE"),
        [
            (org.id, org.name, str(org.max_concurrent_calls), f"{org.cps:g}",
             f"{org.line_variable}={org.line_value}")
            for org in organizations
        ],
    )
    return 0


def _org_set_lines(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.lines is None and args.cps is None and args.line_rule is None:
        raise ConfigError("give --lines, --cps, --line-rule or more than one")
    _check_lines(args.lines, args.cps)
    rule = None
    if args.line_rule is not None:
        variable, sep, value = args.line_rule.partition("=")
        if not sep:
            raise ConfigError(f"--line-rule {args.line_rule!r}: expected VARIABLE=VALUE")
        try:
            rule = parse_line_rule({"variable": variable, "value": value}, "--line-rule")
        except InputError as err:
            raise ConfigError(str(err)) from err
    with _repo(settings) as repo:
        repo.set_organization_lines(
            args.org_id, LinesChange(max_concurrent_calls=args.lines, cps=args.cps, line_rule=rule)
        )
        org = repo.get_organization(args.org_id)
    assert org is not None  # set_organization_lines raised NotFound otherwise
    print(
        f"{org.id}: {org.max_concurrent_calls} lines, {org.cps:g} calls/s, "
        f"lines are channels with {org.line_variable}={org.line_value} "
        "(a running robocall applies it within a second)"
    )
    return 0


def _check_lines(lines: int | None, cps: float | None) -> None:
    if lines is not None and not 0 <= lines <= MAX_LINES:
        raise ConfigError(f"--lines must be 0 to {MAX_LINES} (0 stops dialling)")
    if cps is not None and not MIN_CPS <= cps <= MAX_CPS:
        raise ConfigError(f"--cps must be {MIN_CPS:g} to {MAX_CPS:g}")


def _key_create(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        try:
            issued = bootstrap.issue_api_key(repo, args.org_id)
        except NotFound as err:
            raise NotFound(f"{err}; create one with `robocall org create NAME --lines N`") from err
    print(issued.key)
    print(f"key id {issued.id} (list: robocall key list {args.org_id}; "
          f"revoke: robocall key revoke {issued.id})", file=sys.stderr)
    return 0


def _key_list(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        keys = repo.api_keys(args.org_id)
    _print_keys(keys)
    return 0


def _key_revoke(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        record = repo.revoke_api_key(args.key_id)
    print(f"API key {record.id} of {record.owner} revoked at {_when(record.revoked_at)}")
    return 0


def _operator_key_create(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        issued = bootstrap.issue_operator_key(repo, args.name)
    print(issued.key)
    print(f"operator key id {issued.id}; send it in the x-robocall-operator-key header",
          file=sys.stderr)
    return 0


def _operator_key_list(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        keys = repo.operator_keys()
    _print_keys(keys, owner="HOLDER")
    return 0


def _operator_key_revoke(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        record = repo.revoke_operator_key(args.key_id)
    print(f"operator key {record.id} of {record.owner} revoked at {_when(record.revoked_at)}")
    return 0


def _org_secret(args: argparse.Namespace, settings: config.Settings) -> int:
    with _repo(settings) as repo:
        secret = bootstrap.webhook_secret(repo, args.org_id, rotate=args.rotate)
    print(secret)
    return 0


@contextmanager
def _repo(settings: config.Settings) -> Iterator[Repo]:
    repo = bootstrap.open_repo(settings)
    try:
        yield repo
    finally:
        repo.close()


def _print_keys(keys: list[KeyRecord], owner: str = "ORGANIZATION") -> None:
    _print_rows(
        ("ID", owner, "CREATED", "REVOKED"),
        [
            (str(k.id), k.owner, _when(k.created_at), _when(k.revoked_at) or "-")
            for k in keys
        ],
    )


def _print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Columns separated by two spaces, the header first: for people and for ``awk``."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else ""


def _check_switch(switch: str) -> None:
    if switch != "fake":
        bootstrap.parse_switch_urls(switch)


def joined_switches(switches: list[str] | None) -> str | None:
    """``--switch`` given once or several times, as ``ROBOCALL_SWITCH`` lists them."""
    return ",".join(switches) if switches else None


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
    serve.add_argument(
        "--switch",
        action="append",
        metavar="fake|esl://:PASSWORD@HOST:PORT[#NAME]",
        help="the FreeSWITCH to dial through; several times for a pool (docs/pool.md)",
    )
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
    org_list = org.add_parser("list", parents=[common], help="every organization, its lines")
    org_list.set_defaults(run=_org_list)
    org_lines = org.add_parser(
        "set-lines", parents=[common], help="change its lines, pace or line rule (at once)"
    )
    org_lines.add_argument("org_id")
    org_lines.add_argument("--lines", type=int, help="concurrent calls (0 stops dialling)")
    org_lines.add_argument("--cps", type=float, help="new calls per second")
    org_lines.add_argument(
        "--line-rule", metavar="VARIABLE=VALUE",
        help="the channel variable that marks its lines, e.g. accountcode=acme",
    )
    org_lines.set_defaults(run=_org_set_lines)
    org_secret = org.add_parser(
        "secret", parents=[common], help="print the webhook signing secret (made if none)"
    )
    org_secret.add_argument("org_id")
    org_secret.add_argument(
        "--rotate", action="store_true", help="replace it; receivers must switch to the new one"
    )
    org_secret.set_defaults(run=_org_secret)

    key = commands.add_parser("key", help="organizations' API keys").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    key_create = key.add_parser("create", parents=[common], help="create one; prints it once")
    key_create.add_argument("org_id")
    key_create.set_defaults(run=_key_create)
    key_list = key.add_parser("list", parents=[common], help="an organization's keys, by id")
    key_list.add_argument("org_id")
    key_list.set_defaults(run=_key_list)
    key_revoke = key.add_parser("revoke", parents=[common], help="refused from the next request")
    key_revoke.add_argument("key_id", type=int)
    key_revoke.set_defaults(run=_key_revoke)

    operator = commands.add_parser("operator", help="the operator's HTTP credentials")
    operator_key = operator.add_subparsers(dest="operator_command", required=True,
                                           metavar="WHAT").add_parser(
        "key", help="operator keys: set organizations' lines over HTTP"
    ).add_subparsers(dest="operator_key_command", required=True, metavar="ACTION")
    op_create = operator_key.add_parser(
        "create", parents=[common], help="create one for NAME; prints it once"
    )
    op_create.add_argument("name", help="who holds it (a person or a system)")
    op_create.set_defaults(run=_operator_key_create)
    op_list = operator_key.add_parser("list", parents=[common], help="operator keys, by id")
    op_list.set_defaults(run=_operator_key_list)
    op_revoke = operator_key.add_parser(
        "revoke", parents=[common], help="refused from the next request"
    )
    op_revoke.add_argument("key_id", type=int)
    op_revoke.set_defaults(run=_operator_key_revoke)
