"""The command line: ``robocall serve | migrate | org | key | submit | status | doctor | demo``.

The console script enters here, so gevent's patching is the first thing this package does
(docs/design.md, "Code habits" 14); ``python -m robocall`` patches in ``__main__`` before importing
it. Each command group lives in its own module (``admin``, ``calls``, ``doctor``, ``demo``) and adds
its subcommands to the parser; this module turns robocall's errors into exit codes.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from robocall import config, errors, logs  # noqa: E402
from robocall.cli import admin, calls, demo, doctor  # noqa: E402

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, a call went wrong, or any other robocall error
EXIT_USAGE = 2  # bad flags or settings (argparse uses 2 as well)
EXIT_REJECTED = 3  # the request file or its content was refused (bad JSON, or a 400)
EXIT_AUTH = 4  # the API key was refused (401), or may not do that (403)
EXIT_NOT_FOUND = 5  # no such request for this key's organization (404)
EXIT_UNREACHABLE = 6  # nothing answers at the API URL

# The most specific class first: the first match decides the exit code.
EXIT_CODES: tuple[tuple[type[errors.RobocallError], int, str], ...] = (
    (errors.ConfigError, EXIT_USAGE, "configuration error"),
    (errors.InputError, EXIT_REJECTED, "refused"),
    (errors.Conflict, EXIT_REJECTED, "refused"),
    (errors.PayloadTooLarge, EXIT_REJECTED, "refused"),
    (errors.AuthError, EXIT_AUTH, "API key refused"),
    (errors.Forbidden, EXIT_AUTH, "not allowed"),
    (errors.NotFound, EXIT_NOT_FOUND, "not found"),
    (errors.ApiUnreachable, EXIT_UNREACHABLE, "cannot reach the API"),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", logging.INFO), format=LOG_FORMAT)
    try:
        settings = config.from_env().with_overrides(
            database_url=args.database, data_dir=args.data_dir
        )
        logs.configure(
            json_lines=settings.log_json, level=getattr(args, "log_level", logging.INFO)
        )
        return int(args.run(args, settings))
    except errors.RobocallError as err:
        code, label = exit_code_for(err)
        one_line = " ".join(str(err).split())  # a driver's message may span lines
        print(f"robocall: {label}: {one_line}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("robocall: interrupted", file=sys.stderr)
        return 130


def exit_code_for(error: errors.RobocallError) -> tuple[int, str]:
    """The exit code and the label a command's error is reported with."""
    for kind, code, label in EXIT_CODES:
        if isinstance(error, kind):
            return code, label
    return EXIT_FAILED, "error"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", metavar="URL", help="sqlite:///PATH or postgresql://...")
    common.add_argument("--data-dir", type=Path, metavar="DIR", help="default ./robocall-data")

    parser = argparse.ArgumentParser(prog="robocall", description="Self-hosted Robo Call API")
    parser.set_defaults(database=None, data_dir=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_commands(commands, common)
    admin.add_commands(commands, common)
    calls.add_commands(commands)
    doctor.add_commands(commands, common)
    return parser
