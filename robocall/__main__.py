"""``python -m robocall``: patch for gevent before anything else is imported (STYLE habit 14)."""

from gevent import monkey

monkey.patch_all()

from robocall.cli import main  # noqa: E402  (must follow the patching)

raise SystemExit(main())
