"""Read a WAV file while FreeSWITCH still writes it: the PCM after the 44-byte header.

FreeSWITCH 1.11.1 writes a recording as the call goes on and fills in the header's sizes only
when it closes the file, so the sizes are ignored: whatever lies past the header is audio. The
sample rate is taken from the header (written at the start); 8 kHz when it is not there yet.
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER_BYTES = 44


class GrowingWav:
    """New PCM of one growing WAV file, a read at a time. Never blocks: callers poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sample_rate: int | None = None
        self._offset = HEADER_BYTES

    def read(self) -> bytes:
        """The whole samples written since the last read (b"" when none, or no file yet)."""
        try:
            with open(self.path, "rb") as handle:
                if self.sample_rate is None:
                    header = handle.read(HEADER_BYTES)
                    if len(header) < HEADER_BYTES:
                        return b""
                    self.sample_rate = _header_rate(header)
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return b""
        data = data[: len(data) - len(data) % 2]  # a sample half written waits for its other byte
        self._offset += len(data)
        return data


def _header_rate(header: bytes) -> int:
    if header[:4] != b"RIFF" or header[12:16] != b"fmt ":
        return 8000
    (rate,) = struct.unpack("<I", header[24:28])
    return rate if rate in (8000, 16000) else 8000
