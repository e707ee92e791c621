"""Test-wide fixtures. gevent patching happens earlier, in tests/gevent_patch.py."""
