"""``python -m robocall``: patch for gevent before anything else is imported.

See docs/design.md, "Code habits" 14.
"""

from gevent import monkey

monkey.patch_all()

from robocall.cli import main  # noqa: E402  (must follow the patching)

raise SystemExit(main())
