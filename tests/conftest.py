"""Test-wide setup: gevent patching first, as in the entry point (STYLE.md habit 14)."""

from gevent import monkey

monkey.patch_all()
