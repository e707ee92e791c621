"""``robocall demo``: all of robocall on one machine in one command, no FreeSWITCH needed.

It runs the real service (SQLite, the dispatcher, the call runner, the API over HTTP on
127.0.0.1) over an in-process FakeSwitch whose scripted callees answer the demo request
(``robocall.demo``), then acts as a client would: creates an organization and a key, posts
the request over HTTP, watches it and prints every call. It exits 0 only if every call did
what its callee scripted.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from robocall import bootstrap, config, demo
from robocall.api.server import make_server
from robocall.cli import display
from robocall.client import RobocallClient
from robocall.errors import ConfigError, SwitchError

# FakeSwitch runs every scripted duration (rings, prompts, gather timeouts) 5 times faster,
# which keeps the whole demo (the no-answer rings 30 s -> 6 s) well under 20 s.
DEMO_TIME_SCALE = 0.2
DEMO_LINES = 6
DEMO_CPS = 50.0
# A bound on waiting, so a broken install fails instead of hanging.
GIVE_UP_AFTER_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 2.0


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``demo`` to the ``robocall`` parser."""
    parser = commands.add_parser(
        "demo",
        parents=[common],
        help="run robocall with a fake switch and scripted callees, post a request, watch it",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEMO_TIME_SCALE,
        metavar="X",
        help=f"FakeSwitch's speed: scripted durations times X (default {DEMO_TIME_SCALE})",
    )
    # ERROR: the service's warnings (a closing Event Socket) would garble the live display.
    parser.set_defaults(run=_demo, log_level=logging.ERROR)


def _demo(args: argparse.Namespace, settings: config.Settings) -> int:
    console = Console()
    with _data_dir(args.data_dir) as data_dir:
        settings = settings.with_overrides(
            data_dir=data_dir,
            database_url=args.database or "",
            switch="fake",
            listen="127.0.0.1:0",
        )
        return run_demo(settings, console, time_scale=args.time_scale)


def run_demo(
    settings: config.Settings, console: Console, *, time_scale: float = DEMO_TIME_SCALE
) -> int:
    """Start the service over FakeSwitch, post the demo request, show it; the exit code."""
    from robocall.testing import FakeSwitch
    from robocall.tts.voices import available_languages

    if time_scale <= 0:
        raise ConfigError("--time-scale must be more than 0")
    languages = available_languages()
    if "en" not in languages:
        raise ConfigError(
            "the demo's messages are English, spoken by flite, which is not installed: "
            "apt-get install flite espeak-ng sox (robocall doctor checks the TTS engines)"
        )
    console.print(f"[bold]robocall demo[/]: data in {settings.data_dir}, FakeSwitch callees")
    fake = FakeSwitch(callees=demo.callee_book(), time_scale=time_scale).start()
    service = bootstrap.build_service(settings, languages=languages, fake_switch=fake)
    server = make_server(service.api.app, settings.listen)
    try:
        server.start()
        service.start()
        try:
            service.switch.wait_connected(CONNECT_TIMEOUT_SECONDS)
        except SwitchError as err:
            raise SwitchError(f"the demo's FakeSwitch did not accept robocall: {err}") from err
        host, port = server.address[:2]
        base_url = f"http://{host}:{port}"
        org = bootstrap.create_organization(
            service.api.repo, "demo", lines=DEMO_LINES, cps=DEMO_CPS
        )
        service.dispatcher.refresh_organizations()
        key = bootstrap.create_api_key(service.api.repo, org.id)
        console.print(f"API on {base_url}; organization {org.id} ({DEMO_LINES} lines)")
        body = demo.request_body(f"demo-{secrets.token_hex(4)}")
        _tell_story(console)
        with console.status("rendering the messages (flite / espeak-ng)..."):
            rendered = demo.render_ahead(service.tts, body, languages)
        console.print(f"rendered {rendered} messages; posting {body['requestId']} over HTTP")
        return _post_and_watch(RobocallClient(base_url, key), body, console)
    finally:
        server.stop(timeout=STOP_GRACE_SECONDS)
        service.stop(STOP_GRACE_SECONDS)


def _tell_story(console: Console) -> None:
    console.print("The seed's example request to 6 destinations; each callee:")
    for destination, story in demo.STORIES.items():
        console.print(f"  {destination} {story}")


def _post_and_watch(client: RobocallClient, body: dict[str, Any], console: Console) -> int:
    request_id = body["requestId"]
    client.submit(body)
    final = display.watch(
        lambda: client.counts(request_id),
        console,
        give_up_after=GIVE_UP_AFTER_SECONDS,
        poll_seconds=0.25,
    )
    details = list(client.calls(request_id))
    console.print(display.calls_table(details, title=f"request {request_id}"))
    console.print(display.summary_line(final))
    if not display.is_final(final):
        console.print(f"[red]the request did not finish within {GIVE_UP_AFTER_SECONDS:.0f} s[/]")
        return 1
    problems = demo.mismatches(display.call_row(detail) for detail in details)
    for problem in problems:
        console.print(f"[red]unexpected:[/] {problem}")
    if problems:
        return 1
    console.print(
        "[green]demo OK[/]: every call did what its callee scripted. Next: "
        "docs/cli.md (robocall serve, submit, status --watch)"
    )
    return 0


@contextmanager
def _data_dir(chosen: Path | None) -> Iterator[Path]:
    """``chosen`` (kept afterwards), or a temporary directory removed at the end."""
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        yield chosen
        return
    temporary = Path(tempfile.mkdtemp(prefix="robocall-demo-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
