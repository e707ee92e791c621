"""Record tests/transcripts/esl-amd-record-on-answer.txt from a lab FreeSWITCH.

One call to the lab's speaking person (..10: "Hello?" after the pick-up) whose originate carries
robocall's read-leg recording as ``api_on_answer`` (built by robocall.esl.commands, as the
runner builds it). The file notes, beside the frames, how the WAV grows after the answer and
where its first speech is. Usage (the lab's env, see docs/lab.md):

    ROBOCALL_LAB_ESL=host:port:password ROBOCALL_LAB_CALLEES=127.0.0.1:5090 \
        python scripts/record_amd_transcript.py tests/transcripts/esl-amd-record-on-answer.txt

The recorder writes ``auth ClueCon`` in place of the lab's password (and says so in a note).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
import wave
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robocall.esl import commands  # noqa: E402

EVENTS = ("CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE "
          "CHANNEL_UNBRIDGE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_DESTROY DTMF "
          "CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE BACKGROUND_JOB PLAYBACK_START PLAYBACK_STOP "
          "RECORD_START RECORD_STOP")
FRAME = 160  # 20 ms at 8 kHz


class Recorder:
    def __init__(self, host: str, port: int, out: list[str]) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buffer = b""
        self.out = out
        self.started = time.monotonic()
        self.count = 0

    def t(self) -> float:
        return time.monotonic() - self.started

    def send(self, raw: str, shown: str | None = None) -> None:
        for line in (shown or raw).split("\n")[:-1]:
            self.out.append(f">>> {line}" if line else ">>> ")
        self.out.append("")
        self.sock.sendall(raw.encode())

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def until(self, name: str, application: str | None = None) -> None:
        """Read frames up to the first event ``name`` (of ``application``)."""
        while True:
            event = self.frame()
            if event and event["Event-Name"] == name and (
                    application is None or event.get("Application") == application):
                return

    def frame(self, timeout: float = 10.0) -> dict[str, str] | None:
        """Read one frame, write it to the transcript; the event's headers, if an event."""
        self.sock.settimeout(timeout)
        while b"\n\n" not in self.buffer:
            self._receive()
        head, self.buffer = self.buffer.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\n") if line)
        length = int(headers.get("Content-Length", 0))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        self.count += 1
        text = head.decode() + "\n\n" + body.decode()
        if body and not body.endswith(b"\n"):
            text += "\n"
        self.out.append(f"<<< [t={self.t():.3f}] frame {self.count}")
        self.out.extend(text.split("\n")[:-1])
        self.out.append(f"<<< end frame {self.count}")
        event = json.loads(body) if headers.get("Content-Type") == "text/event-json" else None
        if event:
            extra = " ".join(f"{k}={event[k]}" for k in ("Record-File-Path", "Application")
                             if k in event)
            stamp = event["Event-Date-Timestamp"]
            self.out.append(
                f"### event {event['Event-Name']} at Event-Date-Timestamp={stamp} {extra}".rstrip())
        self.out.append("")
        return event


def first_speech_ms(path: Path) -> int | None:
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    import numpy as np

    samples = np.frombuffer(data, dtype="<i2").astype(float)
    for i in range(0, len(samples) - FRAME, FRAME):
        if np.sqrt(np.mean(samples[i:i + FRAME] ** 2)) > 300:
            return i // 8
    return None


def main(target: str) -> None:
    host, port, password = os.environ["ROBOCALL_LAB_ESL"].split(":", 2)
    callees = os.environ.get("ROBOCALL_LAB_CALLEES", "127.0.0.1:5090")
    out: list[str] = []
    channel = str(uuid.uuid4())
    job = str(uuid.uuid4())
    path = Path(f"/tmp/robocall-amd/c-123-{channel}.wav")
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    out += [
        f"### FreeSWITCH 1.11.1 (tag v1.11.1, c2c5964) inbound ESL {host}:{port}, recorded "
        f"{stamp} UTC",
        "### scenario: answering-machine detection's read-leg recording started by the switch "
        "at the answer: the originate carries",
        "### api_on_answer='uuid_record <uuid> start <path> 65 {RECORD_READ_ONLY=true\\,"
        "enable_file_write_buffering=false}' (robocall.esl.commands);",
        "### then the WAV is watched, robocall's `uuid_record <uuid> stop <path>`, uuid_kill, "
        "exit.",
        f"### callee: the lab's person ..10 (sofia/internal/+6580000010@{callees}: answers, says "
        "\"Hello?\" through mod_flite, presses 1 at ~4 s).",
        "### the lab's password is written as ClueCon; filters keep out other calls on the shared "
        "lab switch.",
        "### ",
    ]
    rec = Recorder(host, int(port), out)
    rec.frame()
    rec.send(f"auth {password}\n\n", "auth ClueCon\n\n")
    rec.frame()
    rec.send(f"event json {EVENTS}\n\n")
    rec.frame()
    rec.send(f"filter Unique-ID {channel}\n\n")
    rec.frame()
    rec.send(f"filter Job-UUID {job}\n\n")
    rec.frame()
    originate = commands.originate(
        uuid=channel, dial_string=f"sofia/internal/+6580000010@{callees}",
        caller_id_number="6582674904", timeout_seconds=15,
        line_variable=("accountcode", "org-test"),
        call_id="c-123", request_id="request_10",
        extra_variables=(("continue_on_fail", "true"), ("hangup_after_bridge", "false")),
        api_on_answer=commands.uuid_record_read_leg(channel, str(path), 65),
    )
    rec.send(commands.bgapi(originate, job))
    answered = record_started = None
    seen: set[str] = set()
    while not {"BACKGROUND_JOB", "park"} <= seen:
        event = rec.frame()
        if event is None:
            continue
        name = event["Event-Name"]
        seen.add(event.get("Application", "") if name == "CHANNEL_EXECUTE" else name)
        if name == "CHANNEL_ANSWER":
            answered = (rec.t(), int(event["Event-Date-Timestamp"]))
        if name == "RECORD_START":
            record_started = (rec.t(), int(event["Event-Date-Timestamp"]))
    assert answered and record_started
    out.append(f"### RECORD_START - CHANNEL_ANSWER: Event-Date-Timestamp "
               f"{(record_started[1] - answered[1]) / 1000:.1f} ms (the switch's clock ticks "
               f"in 20 ms), received {1000 * (record_started[0] - answered[0]):.1f} ms apart")
    out.append("")
    growth = []
    for _ in range(10):
        time.sleep(0.2)
        size = path.stat().st_size if path.exists() else -1
        growth.append(f"t={rec.t():.3f} {size} B = {(size - 44) / 16:.0f} ms")
    out.append("### WAV after the answer: " + "; ".join(growth))
    out.append("")
    rec.send(commands.api(commands.uuid_record_stop(channel, str(path))))
    rec.until("RECORD_STOP")
    rec.send(commands.api(commands.uuid_kill(channel)))
    rec.until("CHANNEL_DESTROY")
    with wave.open(str(path), "rb") as wav:
        frames, rate = wav.getnframes(), wav.getframerate()
    speech = first_speech_ms(path)
    out.append(f"### the closed WAV: {frames} samples at {rate} Hz ({frames * 1000 // rate} ms), "
               f"first speech (20 ms RMS > 300) at {speech} ms of it")
    out.append("")
    rec.send(commands.exit_command())
    try:
        while True:
            rec.frame(timeout=3)
    except (OSError, EOFError):
        pass
    path.unlink(missing_ok=True)
    Path(target).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
