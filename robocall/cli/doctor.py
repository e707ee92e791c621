"""``robocall doctor``: is this machine ready to run robocall? Each failure says how to fix it.

Checks, in the order robocall needs them: the database (reachable, schema current), the
FreeSWITCH Event Socket (reachable, password accepted) and the modules robocall's calls use,
the TTS engines and their languages (and a short test phrase rendered by each), and the
directories robocall writes (recordings, rendered messages). The exit code is 1 if any fails.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee
from playhouse.pool import PooledDatabase
from rich.console import Console

from robocall import bootstrap, config
from robocall.cli.admin import without_password
from robocall.errors import (
    CommandFailed,
    ConfigError,
    RobocallError,
    StoreError,
    SwitchAuthError,
    SwitchError,
)

ESL_TIMEOUT_SECONDS = 5.0
# module -> what robocall uses it for (said when it is missing).
REQUIRED_MODULES: dict[str, str] = {
    "mod_sofia": "SIP: every call and transfer is dialled through it",
    "mod_dptools": "playback, play_and_get_digits, bridge and record_session",
    "mod_commands": "originate, uuid_kill, show channels, hupall",
    "mod_event_socket": "the Event Socket robocall speaks",
    "mod_sndfile": "playing and recording .wav files",
    "mod_native_file": "playing files in the channel's own codec",
    "mod_tone_stream": "tone_stream:// (silence and beeps between prompts)",
}
HTTP_CACHE_MODULE = ("mod_http_cache", "http_cache:// URLs (ROBOCALL_TTS_BASE_URL is set)")
TTS_PROGRAMS: dict[str, str] = {
    "flite": "apt-get install flite (English voices)",
    "espeak-ng": "apt-get install espeak-ng (every other language)",
    "sox": "apt-get install sox (resampling and levels of every message)",
}
TEST_PHRASES: dict[str, str] = {
    "en": "robocall is ready",
    "vi": "xin chào",
    "es": "hola",
    "de": "hallo",
    "fr": "bonjour",
}


@dataclass(frozen=True)
class Check:
    """One thing checked: what, whether it passed, what was found, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``doctor`` to the ``robocall`` parser."""
    parser = commands.add_parser(
        "doctor", parents=[common], help="check the database, FreeSWITCH, TTS and directories"
    )
    parser.add_argument(
        "--switch",
        action="append",
        metavar="esl://:PASSWORD@HOST:PORT[#NAME]",
        help="the FreeSWITCH to check, several times for a pool (default $ROBOCALL_SWITCH)",
    )
    # ERROR: closing the Event Socket after the checks logs a warning that means nothing here.
    parser.set_defaults(run=_doctor, log_level=logging.ERROR)


def _doctor(args: argparse.Namespace, settings: config.Settings) -> int:
    settings = settings.with_overrides(switch=",".join(args.switch) if args.switch else None)
    console = Console(soft_wrap=True)  # one line per check, whatever the width
    failed = 0
    for check in run_checks(settings):
        failed += not check.ok
        mark = "[green]ok  [/]" if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} [bold]{check.name}[/]: {check.detail}", highlight=False)
        if check.fix:
            console.print(f"       fix: {check.fix}", highlight=False)
    console.print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def run_checks(settings: config.Settings) -> Iterator[Check]:
    """Every check, in order (a failing group does not stop the next one)."""
    yield from check_database(settings)
    yield from check_switch(settings)
    yield from check_tts()
    for name, directory in (
        ("recordings", settings.recordings_dir),
        ("message cache", settings.tts_cache_dir),
    ):
        yield check_directory(name, directory)


def check_database(settings: config.Settings) -> Iterator[Check]:
    """Connect, and compare the schema version with this robocall's."""
    from robocall.store.db import open_database
    from robocall.store.migrations import MIGRATIONS, current_version

    url = settings.resolved_database_url
    shown = without_password(url)
    migrate_fix = f"run `robocall migrate --database {shown}` (robocall serve also migrates)"
    sqlite_path = _sqlite_path(url)
    if sqlite_path is not None and not sqlite_path.exists():
        yield Check("database", False, f"no SQLite file at {sqlite_path}", migrate_fix)
        return
    latest = MIGRATIONS[-1][0]
    try:
        database = open_database(url)
        with database.connection_context():
            version = current_version(database)
        if isinstance(database, PooledDatabase):  # no idle connection left behind
            database.close_all()
    except (peewee.PeeweeException, StoreError, ConfigError, OSError) as err:
        yield Check(
            "database",
            False,
            f"cannot open {shown}: {str(err).strip()}",
            "check --database / ROBOCALL_DATABASE_URL and that the server is running",
        )
        return
    if version < latest:
        yield Check(
            "database",
            False,
            f"{shown} is at schema {version}, robocall needs {latest}",
            migrate_fix,
        )
    elif version > latest:
        yield Check(
            "database",
            False,
            f"{shown} is at schema {version}, newer than this robocall ({latest})",
            "upgrade robocall to the version that migrated it",
        )
    else:
        yield Check("database", True, f"{shown}, schema {version} (current)")


def check_switch(settings: config.Settings) -> Iterator[Check]:
    """Each switch's Event Socket (reachable? password?), then every module robocall's calls
    use on it."""
    if settings.switch == "fake":
        yield Check(
            "FreeSWITCH",
            True,
            "switch is 'fake' (FakeSwitch): no FreeSWITCH to check; "
            "pass --switch esl://:PASSWORD@HOST:PORT or set ROBOCALL_SWITCH",
        )
        return
    try:
        addresses = bootstrap.parse_switch_urls(settings.switch)
    except ConfigError as err:
        yield Check("FreeSWITCH", False, str(err), "use --switch esl://:PASSWORD@HOST:PORT")
        return
    for address in addresses:
        # One switch: checked as before; in a pool each check names its switch.
        yield from _check_one_switch(settings, address, named=len(addresses) > 1)


def _check_one_switch(
    settings: config.Settings, address: bootstrap.SwitchAddress, *, named: bool
) -> Iterator[Check]:
    from robocall.esl.client import EslClient

    title = f"FreeSWITCH {address.name}" if named else "FreeSWITCH"
    where = address.where
    client = EslClient(
        address.host, address.port, address.password, connect_timeout=ESL_TIMEOUT_SECONDS
    )
    try:
        client.connect()
    except SwitchAuthError as err:
        yield Check(
            title,
            False,
            f"{where} refused: {_first_line(err)}",
            "use the password of event_socket.conf.xml (esl://:PASSWORD@HOST:PORT), "
            "and allow this host in its apply-inbound-acl",
        )
        return
    except SwitchError as err:
        yield Check(
            title,
            False,
            f"cannot reach the Event Socket at {where}: {_first_line(err)}",
            "start FreeSWITCH with mod_event_socket loaded, listening on that address "
            "(event_socket.conf.xml listen-ip / listen-port)",
        )
        return
    try:
        yield Check(title, True, f"{where}: {_version(client)}")
        modules = dict(REQUIRED_MODULES)
        if settings.tts_base_url:
            modules[HTTP_CACHE_MODULE[0]] = HTTP_CACHE_MODULE[1]
        for module, purpose in modules.items():
            check = _check_module(client.api, module, purpose)
            yield replace(check, name=f"{check.name} on {address.name}") if named else check
    finally:
        client.close()


def _check_module(api: Callable[..., str], module: str, purpose: str) -> Check:
    name = f"module {module}"
    try:
        answer = api(f"module_exists {module}", timeout=ESL_TIMEOUT_SECONDS).strip()
    except (CommandFailed, SwitchError) as err:
        return Check(
            name,
            False,
            f"module_exists failed: {_first_line(err)}",
            "is mod_commands loaded? `fs_cli -x 'load mod_commands'`",
        )
    if answer == "true":
        return Check(name, True, "loaded")
    return Check(
        name,
        False,
        f"not loaded (needed for {purpose})",
        f'add <load module="{module}"/> to autoload_configs/modules.conf.xml, '
        f"then `fs_cli -x 'load {module}'`",
    )


def _version(client: Any) -> str:
    try:
        return _first_line(client.api("version", timeout=ESL_TIMEOUT_SECONDS))
    except RobocallError as err:
        return f"connected (version unknown: {_first_line(err)})"


def check_tts() -> Iterator[Check]:
    """The engines on PATH, the languages they offer, and a test phrase rendered by each."""
    from robocall.tts.render import render
    from robocall.tts.voices import available_languages

    for program, fix in TTS_PROGRAMS.items():
        found = shutil.which(program)
        yield Check(f"TTS {program}", bool(found), found or "not on PATH", "" if found else fix)
    languages = available_languages()
    listed = ", ".join(sorted(languages)[:12]) + (" ..." if len(languages) > 12 else "")
    yield Check(
        "TTS languages",
        bool(languages),
        f"{len(languages)}: {listed}" if languages else "none",
        "" if languages else "install flite and espeak-ng",
    )
    espeak_language = next(
        (lang for lang in TEST_PHRASES if lang != "en" and lang in languages), None
    )
    for lang in ("en", espeak_language):
        if lang is None or lang not in languages:
            continue
        with tempfile.TemporaryDirectory(prefix="robocall-doctor-") as work:
            try:
                render(TEST_PHRASES[lang], lang, None, 5, 5, output=Path(work) / "test.wav")
            except RobocallError as err:
                yield Check(
                    f"TTS render ({lang})",
                    False,
                    _first_line(err),
                    "reinstall the engine named above; sox must be on PATH",
                )
                continue
        yield Check(f"TTS render ({lang})", True, f"said {TEST_PHRASES[lang]!r}")


def check_directory(name: str, directory: Path) -> Check:
    """``directory`` exists and takes a new file, or can be created."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return Check(
            name,
            False,
            f"{directory}: {existing} is not a directory",
            "set --data-dir / ROBOCALL_DATA_DIR to a directory",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".robocall-doctor-"):
            pass
    except OSError as err:
        return Check(
            name,
            False,
            f"{existing} is not writable: {err.strerror or err}",
            "`chown` it to the user robocall runs as, or pick another --data-dir",
        )
    state = "writable" if existing == directory else f"will be created (in {existing})"
    return Check(name, True, f"{directory} {state}")


def _sqlite_path(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    return Path(unquote(parts.path[1:] if parts.path.startswith("/") else parts.path))


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else ""
