"""Audio in, findings out: the frame analyzer and the classifier over a stream of PCM bytes.

No I/O: whoever holds the audio (a recording that grows, a corpus clip) feeds bytes in any
chunking; the detector cuts them into 20 ms frames and keeps the remainder for the next feed.
"""

from __future__ import annotations

from robocall.amd.classifier import Classifier, Finding, Rules
from robocall.amd.features import FrameAnalyzer


class Detector:
    """One call's detection: ``feed(pcm)`` as audio arrives, until :attr:`done`."""

    def __init__(self, sample_rate: int = 8000, rules: Rules | None = None) -> None:
        self.analyzer = FrameAnalyzer(sample_rate)
        self.classifier = Classifier(rules)
        self._pending = b""

    @property
    def done(self) -> bool:
        return self.classifier.done

    def feed(self, pcm: bytes) -> list[Finding]:
        """More audio (16-bit little-endian mono); returns what it decided."""
        data = self._pending + pcm
        size = self.analyzer.frame_bytes
        found: list[Finding] = []
        offset = 0
        while offset + size <= len(data) and not self.classifier.done:
            found += self.classifier.feed(self.analyzer.analyze(data[offset : offset + size]))
            offset += size
        self._pending = b"" if self.classifier.done else data[offset:]
        return found


def detect(pcm: bytes, sample_rate: int = 8000, rules: Rules | None = None) -> Classifier:
    """The classifier after the whole of ``pcm`` (or as much as it needed)."""
    detector = Detector(sample_rate, rules)
    detector.feed(pcm)
    return detector.classifier
