"""Audio served over HTTP: call recordings (to their organization only) and rendered prompts
(to FreeSWITCH's mod_http_cache when it does not share robocall's disk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import falcon

from robocall.errors import NotFound

WAV = "audio/wav"


def _send_file(resp: falcon.Response, path: Path) -> None:
    resp.content_type = WAV
    resp.content_length = path.stat().st_size
    resp.stream = path.open("rb")


@dataclass
class RecordingResource:
    """``GET /v1/recordings/{callId}``: the call's recording, for the organization that owns it.

    Another organization's call, a call that was not recorded, and a recording not (yet) on
    disk all answer 404 alike, so ids of other organizations' calls reveal nothing.
    """

    call_belongs_to: Callable[[int, str], bool]
    recordings_dir: Path

    def on_get(self, req: falcon.Request, resp: falcon.Response, call_id: str) -> None:
        missing = NotFound(f"no recording for call {call_id!r}")
        if not call_id.isdigit() or len(call_id) > 18:
            raise missing
        if not self.call_belongs_to(int(call_id), req.context.organization.id):
            raise missing
        path = self.recordings_dir / f"{int(call_id)}.wav"
        if not path.is_file():
            raise missing
        _send_file(resp, path)


@dataclass
class PromptAudioResource:
    """``GET /v1/tts/{name}``: a rendered prompt, by its content key.

    Public: FreeSWITCH fetches it without an API key. The key is an HMAC of the text with a
    secret of the cache, so knowing a message does not give its address.
    """

    lookup: Callable[[str], Path | None]
    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        path = self.lookup(name)
        if path is None:
            raise NotFound(f"no prompt {name!r}")
        _send_file(resp, path)
