"""Detection beside a call: record the callee's side, follow the file, report what is found.

Runs in its own greenlet so the call's flow starts at the answer as before (a person hears no
extra silence). The read-leg recording (``uuid_record ... start ... {RECORD_READ_ONLY=true}``)
is started by FreeSWITCH itself at the instant of the answer: the originate carries the
command as ``api_on_answer`` (:meth:`CallDetection.start_command`), so no command round trip
lies between the answer and the recording's first frame, however late robocall reads the
answer. Detection reads the file while it grows (``follow.GrowingWav``), feeds the detector,
and hands each finding to ``report`` — the call runner puts it on the call's own event queue,
so every decision about the call is still taken in the call's greenlet. It stops when the
classifier is done, when told to, or at its bounds, then stops the recording and removes the
file (it only ever held the greeting).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import gevent

from robocall.amd.classifier import AnsweredBy, Finding, GreetingEnd, Rules, Verdict
from robocall.amd.detector import Detector
from robocall.amd.follow import GrowingWav
from robocall.errors import SwitchError
from robocall.esl import commands

log = logging.getLogger(__name__)


class Api(Protocol):
    def api(self, command: str) -> str: ...


@dataclass(frozen=True)
class DetectionSettings:
    """Where the read-leg recordings go (a directory FreeSWITCH writes and robocall reads), how
    often the file is read, and how long to wait for audio that does not come."""

    directory: Path = Path("robocall-data/amd")
    poll_seconds: float = 0.05  # a verdict waits at most this long for its audio to be read
    no_audio_seconds: float = 5.0  # no new audio this long: the recording is not coming
    rules: Rules = Rules()


class CallDetection:
    """One call's detection; ``start()`` once the call is answered, ``stop()`` at its end."""

    def __init__(
        self,
        switch: Api,
        channel_uuid: str,
        name: str,
        report: Callable[[Finding], None],
        settings: DetectionSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.switch = switch
        self.channel_uuid = channel_uuid
        self.path = settings.directory.resolve() / f"{name}.wav"
        self.report = report
        self.settings = settings
        self.monotonic = monotonic
        self._greenlet: gevent.Greenlet | None = None

    @property
    def limit_seconds(self) -> int:
        """The recording's own bound: the longest greeting, and some."""
        return max(1, self.settings.rules.max_greeting_ms // 1000 + 5)

    def start_command(self) -> str:
        """The api command that starts the recording, for the originate's ``api_on_answer``.

        Its directory is made here, before the dial: the switch writes the file at the answer.
        A directory robocall cannot make does not stop the call (the switch may still write
        there); detection then finds no file and says ``unknown``.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            log.warning("amd %s: %s", self.channel_uuid, err)
        return commands.uuid_record_read_leg(self.channel_uuid, str(self.path), self.limit_seconds)

    def start(self) -> None:
        """Follow the recording the switch began at the answer (``start_command``)."""
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            # The switch's recording runs to its limit unless stopped; on a channel that is
            # gone the switch answers -ERR, which changes nothing.
            with contextlib.suppress(SwitchError):
                self.switch.api(commands.uuid_record_stop(self.channel_uuid, str(self.path)))
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _follow(self) -> None:
        wav = GrowingWav(self.path)
        detector: Detector | None = None
        last_audio = self.monotonic()
        while detector is None or not detector.done:
            data = wav.read()
            if data:
                last_audio = self.monotonic()
                if detector is None:
                    detector = Detector(wav.sample_rate or 8000, self.settings.rules)
                for finding in detector.feed(data):
                    self.report(finding)
                continue
            if self.monotonic() - last_audio > self.settings.no_audio_seconds:
                classifier = detector.classifier if detector is not None else None
                if wav.sample_rate is None:
                    # no file: the switch's api_on_answer could not start the recording (the
                    # directory not writable by it, or not shared with robocall)
                    log.warning("amd %s: no recording at %s", self.channel_uuid, self.path)
                if classifier is None or classifier.verdict is None:
                    self.report(Verdict(AnsweredBy.UNKNOWN, 0, "no audio"))
                elif classifier.greeting_end is None:
                    # a machine whose audio stopped: whoever waits for its greeting must not wait on
                    self.report(GreetingEnd(classifier.elapsed_ms, "timeout"))
                return
            gevent.sleep(self.settings.poll_seconds)
