"""Run FakeSwitch alone: ``python -m robocall.testing --callees callees.json [--port 8021]``.

Binds 127.0.0.1 only, prints the ``--switch`` URL for robocall, and serves until interrupted.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from robocall.testing.callees import CalleeBook  # noqa: E402
from robocall.testing.server import FakeSwitch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the fake, serve until SIGINT/SIGTERM, then shut down as FS does."""
    parser = argparse.ArgumentParser(prog="python -m robocall.testing", description=__doc__)
    parser.add_argument("--callees", help="JSON callee file (docs/fakeswitch-callees.md)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--password", default="ClueCon")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="real seconds per scripted second (0.1 runs 10x faster)")
    args = parser.parse_args(argv)
    book = CalleeBook.from_file(args.callees) if args.callees else CalleeBook.people()
    fake = FakeSwitch(book, password=args.password, time_scale=args.time_scale,
                      port=args.port).start()
    print(fake.url, flush=True)
    stop = Event()
    gevent.signal_handler(signal.SIGINT, stop.set)
    gevent.signal_handler(signal.SIGTERM, stop.set)
    stop.wait()
    fake.shutdown()


if __name__ == "__main__":
    main()
