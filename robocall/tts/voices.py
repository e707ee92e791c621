"""Which languages robocall can speak: English through flite, the rest through espeak-ng.

Asked once per process (the engines' voice lists do not change while it runs); the answer is
what submission-time validation checks ``lang`` against.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

FLITE = "flite"
ESPEAK = "espeak-ng"


@functools.cache
def available_languages() -> frozenset[str]:
    """Language codes some installed engine can speak (e.g. ``en``, ``vi``, ``cmn``)."""
    languages: set[str] = set()
    if shutil.which(FLITE):
        languages.add("en")
    languages.update(espeak_languages())
    return frozenset(languages)


@functools.cache
def espeak_languages() -> frozenset[str]:
    """Language codes espeak-ng lists in ``--voices`` (empty when it is not installed)."""
    if not shutil.which(ESPEAK):
        return frozenset()
    listing = subprocess.run(
        [ESPEAK, "--voices"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    codes = set()
    for line in listing.splitlines()[1:]:  # the first line is the column header
        columns = line.split()
        if len(columns) >= 2:
            codes.add(columns[1])
    return frozenset(codes)
