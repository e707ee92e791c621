"""Dispatch: an organization's lines, and the dispatcher that claims and dials queued calls."""
