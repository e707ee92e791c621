"""``robocall submit FILE.json`` and ``robocall status REQUEST_ID``: a client of a running API.

Thin: the HTTP lives in ``robocall.client``, the rendering in ``robocall.cli.display``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

from rich.console import Console

from robocall import config
from robocall.cli import display
from robocall.client import RobocallClient, read_request_file
from robocall.errors import ConfigError

DEFAULT_ROWS = 100


def add_commands(commands: Any) -> None:
    """Add ``submit`` and ``status`` to the ``robocall`` parser."""
    client_flags = argparse.ArgumentParser(add_help=False)
    client_flags.add_argument(
        "--url", metavar="URL", help="the API (default $ROBOCALL_URL or http://127.0.0.1:8080)"
    )
    client_flags.add_argument("--key", metavar="KEY", help="API key (default $ROBOCALL_API_KEY)")
    client_flags.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        metavar="N",
        help=f"calls shown in the table (default {DEFAULT_ROWS}; 0: all)",
    )

    submit = commands.add_parser(
        "submit", parents=[client_flags], help="POST a request file to the API and watch it"
    )
    submit.add_argument("file", type=Path, help="the /v1/call body (JSON)")
    submit.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="print the request id and return without waiting for the calls",
    )
    submit.set_defaults(run=_submit)

    status = commands.add_parser(
        "status", parents=[client_flags], help="a request's calls (--watch: until all are final)"
    )
    status.add_argument("request_id", metavar="REQUEST_ID")
    status.add_argument("--watch", action="store_true", help="show progress until it is final")
    status.set_defaults(run=_status)


def client_for(args: argparse.Namespace, settings: config.Settings) -> RobocallClient:
    """The API client the flags (or, failing them, the settings) describe."""
    key = args.key or settings.api_key
    if not key:
        raise ConfigError("no API key: pass --key KEY or set ROBOCALL_API_KEY")
    return RobocallClient(args.url or settings.api_url, key)


def _submit(args: argparse.Namespace, settings: config.Settings) -> int:
    body = read_request_file(args.file)
    client = client_for(args, settings)
    console = Console()
    accepted = client.submit(body)
    console.print(f"submitted {accepted['requestId']}: {accepted['total']} calls")
    if not args.watch:
        console.print(f"follow it with: robocall status {accepted['requestId']} --watch")
        return 0
    return show_request(client, accepted["requestId"], console, watch=True, rows=args.rows)


def _status(args: argparse.Namespace, settings: config.Settings) -> int:
    client = client_for(args, settings)
    return show_request(client, args.request_id, Console(), watch=args.watch, rows=args.rows)


def show_request(
    client: RobocallClient,
    request_id: str,
    console: Console,
    *,
    watch: bool,
    rows: int = DEFAULT_ROWS,
    give_up_after: float | None = None,
) -> int:
    """Show a request's progress (until final when ``watch``), then its calls; exit code 0."""
    if watch:
        status = display.watch(
            lambda: client.counts(request_id), console, give_up_after=give_up_after
        )
    else:
        status = client.counts(request_id)
    details = client.calls(request_id)
    shown = list(details if rows <= 0 else itertools.islice(details, rows))
    console.print(display.calls_table(shown))
    if len(shown) < status["total"]:
        console.print(f"... {status['total'] - len(shown)} more calls (--rows 0 shows all)")
    console.print(display.summary_line(status))
    return 0
