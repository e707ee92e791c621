"""FakeSwitch held to reality: replay each recorded FreeSWITCH session against the fake.

For every transcript in tests/transcripts/, the commands the recorder sent are sent to a
FakeSwitch whose callees are scripted like the SIPp callees of that recording, each at the
point of the conversation where the recorder sent it (after as many frames as it had received).
Then the fake's frames are compared with the real ones:

- the replies (command/reply, api/response, disconnect-notice), in order: same Content-Type,
  same outer header names in the same order, same Reply-Text, same api body (ids and numbers
  normalised; JSON bodies by row count, column names and accountcode values);
- every channel's events, in order: same event names (BACKGROUND_JOB counted with the
  channel it originated); interleaving between channels is not compared, because it is not
  deterministic on the real switch either (docs/design.md, "Facts measured here": busy hangs
  up first, no answer reports first, B-leg and A-leg events race);
- for each pair of matched events: the same non-variable header names in the same order; the same
  presence of the variables robocall reads (``RELEVANT_VARIABLES`` plus the originate's own);
  and every other variable of the real event, except SIP/RTP media ones, present in the fake's;
- the framing of every event: ``Content-Length`` then ``Content-Type``, json or plain as asked.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from robocall.testing import Callee, CalleeBook, FakeSwitch, Press
from robocall.testing.voice import Segment
from tests.support import transcripts
from tests.support.eslwire import EslWire, WireFrame

TIME_SCALE = 0.1

SIPP = "sofia/internal/1000@127.0.0.1:"
ANSWERS = Callee(answer_after_ms=20)
CALLEES: dict[str, dict[str, Callee]] = {
    "esl-transcript.txt": {"5070": Callee(ring=False, presses=(
        Press(6160, "1"), Press(6850, "2"), Press(7550, "3"), Press(8250, "#")))},
    "esl-transcript-plain.txt": {"5070": Callee(ring=False, presses=(
        Press(6160, "1"), Press(6860, "2"), Press(7560, "3"), Press(8240, "#")))},
    "esl-transcript-originate-failures.txt": {
        "5071": Callee(outcome="busy", ring=False), "5072": Callee(outcome="no_answer"),
        "5079": Callee(outcome="network_failure", ring=False)},
    "esl-transfer-answered.txt": {"5070": ANSWERS, "5073": Callee(hangup_after_ms=3000)},
    "esl-transfer-busy.txt": {"5070": ANSWERS, "5071": Callee(outcome="busy", ring=False)},
    "esl-transfer-noanswer.txt": {"5070": ANSWERS, "5072": Callee(outcome="no_answer")},
    "esl-recording.txt": {"5070": ANSWERS},
    "esl-callee-hangup-during-playback.txt": {"5074": Callee(hangup_after_ms=2000)},
    "esl-gather-timeout.txt": {"5070": ANSWERS},
    "esl-gather-invalid.txt": {
        "5075": Callee(presses=(Press(1500, "3"), Press(3500, "4"))),
        "5077": Callee(presses=(Press(1500, "3"),))},
    "esl-gather-invalid-then-valid.txt": {
        "5076": Callee(presses=(Press(1500, "3"), Press(3500, "1")))},
    "esl-line-counting.txt": {"5070": ANSWERS, "5072": Callee(outcome="no_answer")},
    "esl-pipelined-commands.txt": {"5070": ANSWERS, "5074": Callee(hangup_after_ms=2000)},
    # the lab's person ..10: answers without ringing, "Hello?" after ~0.6 s (flite)
    "esl-amd-record-on-answer.txt": {"sofia/internal/+6580000010@127.0.0.1:5090": Callee(
        ring=False, answer_after_ms=20,
        audio=(Segment("silence", ms=640), Segment("say", text="Hello?", voice="kal"),
               Segment("silence", ms=5000)))},
}

RELEVANT_VARIABLES = {
    "read_result", "pagd_digits", "pagd_digits_invalid", "current_application_response",
    "playback_ms", "playback_seconds", "originate_disposition", "DIALSTATUS",
    "originate_failed_cause", "last_bridge_hangup_cause", "bridge_hangup_cause",
    "last_bridge_to", "bridge_uuid", "signal_bond", "sip_hangup_disposition", "hangup_cause",
    "record_ms", "record_seconds", "record_samples", "uuid", "call_uuid", "channel_name",
    "current_application", "billsec", "duration", "hangup_after_bridge", "continue_on_fail",
    "call_timeout", "api_on_answer", "record_file_size", "record_completion_cause",
}
# Variables a fake without SIP or RTP cannot mean anything by (SDP, codecs, media ports, SIP
# dialog headers); every other variable the real event has, the fake's must have too.
MEDIA_VARIABLES = re.compile(
    r"^(sip_|rtp_|switch_[rm]_sdp|ep_codec|local_media|remote_media|advertised_media|"
    r".*_media_flow$|read_|write_|original_|dtmf_type|endpoint_disposition|recovery_|"
    r"sofia_|presence|sent_callee|callee_id|originated_legs|originate_causes)")
# Bridge bookkeeping the real switch sets at moments that differ between its outcomes.
BRIDGE_BOOKKEEPING = {"originate_signal_bond", "last_sent_callee_id_name",
                      "last_sent_callee_id_number", "last_bridge_proto_specific_hangup_cause"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _book(name: str) -> CalleeBook:
    return CalleeBook({(where if "/" in where else SIPP + where): callee
                       for where, callee in CALLEES[name].items()})


def _replay(name: str) -> tuple[transcripts.Transcript, list[WireFrame], bool]:
    """Send the transcript's commands to a fake at the recorded points.

    Returns the record, every frame the fake sent, and whether it closed the connection
    (as FreeSWITCH does after ``exit``) rather than falling silent.
    """
    record = transcripts.load(name)
    fake = FakeSwitch(_book(name), time_scale=TIME_SCALE).start()
    client = EslWire(fake.address, timeout=5)
    closed = False
    try:
        _drive(record, client)
    except EOFError:
        closed = True
    except TimeoutError:
        pass  # the fake fell silent: the comparison shows where
    finally:
        client.close()
        fake.stop()
    return record, client.frames, closed


def _drive(record: transcripts.Transcript, client: EslWire) -> None:
    frames_seen = 0
    batch: list[bytes] = []
    for item in record.items:
        if item.connection != "conn1":
            continue
        if isinstance(item, transcripts.Sent):
            batch.append(item.raw)
            continue
        if batch:
            _send_after(client, frames_seen, b"".join(batch))
            batch = []
        frames_seen += 1
    if batch:
        _send_after(client, frames_seen, b"".join(batch))
    while True:
        client.read()  # until the fake closes after `exit` (EOFError)


def _send_after(client: EslWire, frames_before: int, data: bytes) -> None:
    # The recorder sent these bytes once it had received `frames_before` frames; so do we.
    while len(client.frames) < frames_before:
        client.read()
    client.sock.sendall(data)


# --- comparison -------------------------------------------------------------------------------


def _event(raw: bytes) -> dict[str, str] | None:
    return WireFrame(raw).event


def _outer_names(raw: bytes) -> list[str]:
    return list(WireFrame(raw).headers)


def _normal(text: str) -> str:
    return re.sub(r"\d+", "N", _UUID.sub("U", text))


def _reply_shape(raw: bytes) -> tuple[object, ...]:
    frame = WireFrame(raw)
    body = frame.body.decode()
    if body.startswith("{"):
        data = json.loads(body)
        rows = data.get("rows")
        shape: object = (data["row_count"], "rows" in data,
                         [sorted(r) for r in rows or []],
                         [r.get("accountcode") for r in rows or []])
    elif body.startswith("UP "):
        shape = _normal(body).splitlines()[1:]  # the status text, counters normalised
    else:
        shape = _normal(body)
    return (_outer_names(raw), _normal(frame.headers.get("Reply-Text", "")), shape)


def _channel_sequences(frames: list[bytes]) -> dict[str, list[dict[str, str]]]:
    """Events per channel, keyed by the channel's order of first appearance."""
    order: dict[str, str] = {}
    jobs: dict[str, str] = {}
    sequences: dict[str, list[dict[str, str]]] = defaultdict(list)
    for raw in frames:
        event = _event(raw)
        if event is None or event["Event-Name"] == "SHUTDOWN":
            continue
        if event["Event-Name"] == "BACKGROUND_JOB":
            match = re.search(r"origination_uuid=([^,}]+)", event.get("Job-Command-Arg", ""))
            owner = match.group(1) if match else event["Job-UUID"]
            jobs[event["Job-UUID"]] = owner
        else:
            owner = event["Unique-ID"]
        key = order.setdefault(owner, f"leg{len(order)}")
        sequences[key].append(event)
    return sequences


def _relevant(event: dict[str, str]) -> set[str]:
    names = {k[len("variable_"):] for k in event if k.startswith("variable_")}
    own = set(re.findall(r"[{,]([a-z_]+)=", event.get("variable_current_application_data", "")))
    return names & (RELEVANT_VARIABLES | own)


def _missing_variables(real: dict[str, str], fake: dict[str, str]) -> set[str]:
    names = {k[len("variable_"):] for k in real if k.startswith("variable_")}
    wanted = {n for n in names if not MEDIA_VARIABLES.match(n)} - BRIDGE_BOOKKEEPING
    return {n for n in wanted if f"variable_{n}" not in fake}


def _header_order(event: dict[str, str]) -> list[str]:
    return [k for k in event if not k.startswith("variable_")]


def _header_names(event: dict[str, str]) -> set[str]:
    return {k for k in event if not k.startswith("variable_")}


def _compare(name: str, real: list[bytes], fake: list[bytes]) -> list[str]:
    faults: list[str] = []
    real_replies = [_reply_shape(r) for r in real if _event(r) is None]
    fake_replies = [_reply_shape(r) for r in fake if _event(r) is None]
    if real_replies != fake_replies:
        faults.append(f"replies differ:\n real {real_replies}\n fake {fake_replies}")
    for raw in fake:
        if _event(raw) is not None and _outer_names(raw) != ["Content-Length", "Content-Type"]:
            faults.append(f"event framing {_outer_names(raw)}")
    real_content = {WireFrame(r).content_type for r in real}
    fake_content = {WireFrame(r).content_type for r in fake}
    if real_content != fake_content:
        faults.append(f"content types: real {real_content} fake {fake_content}")
    real_legs, fake_legs = _channel_sequences(real), _channel_sequences(fake)
    for leg in sorted(set(real_legs) | set(fake_legs)):
        real_names = [e["Event-Name"] for e in real_legs.get(leg, [])]
        fake_names = [e["Event-Name"] for e in fake_legs.get(leg, [])]
        if real_names != fake_names:
            faults.append(f"{leg} events:\n real {real_names}\n fake {fake_names}")
            continue
        for real_event, fake_event in zip(real_legs[leg], fake_legs[leg], strict=True):
            where = f"{leg} {real_event['Event-Name']}"
            missing = _header_names(real_event) - _header_names(fake_event)
            extra = _header_names(fake_event) - _header_names(real_event)
            if missing or extra:
                faults.append(f"{where}: headers missing {sorted(missing)} extra {sorted(extra)}")
            elif _header_order(real_event) != _header_order(fake_event):
                faults.append(f"{where}: header order differs")
            missing_variables = _missing_variables(real_event, fake_event)
            if missing_variables:
                faults.append(f"{where}: variables missing {sorted(missing_variables)}")
            if _relevant(real_event) != _relevant(fake_event):
                faults.append(f"{where}: variables real {sorted(_relevant(real_event))} "
                              f"fake {sorted(_relevant(fake_event))}")
    return faults


@pytest.mark.parametrize("name", sorted(CALLEES))
def test_fake_matches_recorded_session(name: str) -> None:
    # Given the commands of a recorded session and callees scripted like its SIPp callees
    record, frames, closed = _replay(name)

    # When the fake's frames are compared with the real switch's
    faults = _compare(name, [f.raw for f in record.frames()], [f.raw for f in frames])

    # Then they agree on replies, per-channel event orders, header names and framing,
    # and the fake hung up after `exit` as the real one did
    assert not faults, f"{name}:\n" + "\n".join(faults)
    assert closed


def test_every_transcript_is_replayed_or_covered() -> None:
    # Given the recorded transcripts; shutdown needs a second connection: test_fakeswitch_esl
    covered = set(CALLEES) | {"esl-shutdown.txt"}

    # Then none is left out of the fidelity check
    assert set(transcripts.names()) == covered



def test_the_comparison_is_not_vacuous() -> None:
    # Given the frames of a real session
    frames = [f.raw for f in transcripts.load("esl-transcript.txt").frames()]
    dtmf_at = next(i for i, raw in enumerate(frames) if b'"Event-Name":"DTMF"' in raw)

    # When it is compared with itself, without one DTMF, and with a header renamed
    same = _compare("self", frames, frames)
    dropped = _compare("dropped", frames, frames[:dtmf_at] + frames[dtmf_at + 1:])
    renamed = _compare("renamed", frames,
                       [raw.replace(b'"DTMF-Source"', b'"DTMF-Origin"') for raw in frames])

    # Then only the faithful copy passes
    assert same == []
    assert any("events" in fault for fault in dropped)
    assert any("DTMF-Origin" in fault for fault in renamed)
