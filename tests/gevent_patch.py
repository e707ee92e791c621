"""Loaded by pytest before any other plugin (``-p tests.gevent_patch`` in pyproject.toml), so
gevent patches the standard library before schemathesis, urllib3 or anyio import ssl and socket:
tests run under the same patching as ``robocall serve`` (docs/design.md, "Code habits" 14)."""

from gevent import monkey

monkey.patch_all()
