"""The dialplan applications robocall runs on a parked leg, as FreeSWITCH 1.11.1 runs them.

``run_session`` is a leg's life after its originate: CHANNEL_EXECUTE(park), CHANNEL_PARK, then
every queued ``sendmsg execute`` in order, then the hangup tail. Each application emits the
events the recordings show (see tests/transcripts/README.md) and sets the same variables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import gevent
from gevent.queue import Empty

from robocall.testing import media
from robocall.testing.callees import parse_dial_string
from robocall.testing.channels import Channel, Message

# Bridge causes after which FreeSWITCH keeps the A leg up even without continue_on_fail.
_ALWAYS_CONTINUE = {"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL"}
_DIALSTATUS = {"SUCCESS": "SUCCESS", "USER_BUSY": "BUSY", "NO_ANSWER": "NOANSWER",
               "NO_USER_RESPONSE": "NOANSWER", "ORIGINATOR_CANCEL": "CANCEL"}
FRAME_MS = 20  # FreeSWITCH acts on a queued message at the next 20 ms media frame

AppResult = Callable[[], None] | None


def run_session(channel: Channel) -> None:
    """Park the answered leg, run its queued applications, then end it the way FreeSWITCH does."""
    if not channel.up:  # hung up between answer and park(): nothing ran
        channel.finish()
        return
    channel.start_executing()
    channel.park_uuid = str(uuid.uuid4())
    _begin(channel, "park", "")
    channel.emit("CHANNEL_EXECUTE", [("Application", "park"),
                                     ("Application-UUID", channel.park_uuid)])
    channel.emit("CHANNEL_PARK")
    channel.parked = True
    after_park: list[Callable[[], None]] = []
    while channel.up:
        message = channel.inbox.get()
        if message is None or not channel.wait(FRAME_MS):
            break
        follow_up = execute(channel, message)
        if follow_up is not None:
            if channel.up:
                follow_up()
            else:
                after_park.append(follow_up)
    channel.emit("CHANNEL_EXECUTE_COMPLETE", [
        ("Application", "park"), ("Application-Response", _response(channel)),
        ("Application-UUID", channel.park_uuid)])
    for follow_up in after_park:
        follow_up()
    channel.finish()


def execute(channel: Channel, message: Message) -> AppResult:
    """Run one application: CHANNEL_EXECUTE, the app, CHANNEL_EXECUTE_COMPLETE."""
    app = APPS.get(message.app)
    if app is None:
        channel.started_messages += 1
        return None  # FreeSWITCH logs "Invalid Application" and raises no event
    data = [("Application-Data", message.argument)] if message.argument else []
    # A sendmsg execute runs `loops` times; FreeSWITCH shows the count on the channel.
    channel.variables.update({"current_loop": "1", "total_loops": "1"})
    _begin(channel, message.app, message.argument)
    channel.emit("CHANNEL_EXECUTE", [("Application", message.app), *data,
                                     ("Application-UUID", message.event_uuid)])
    channel.started_messages += 1
    # A message that reached the leg before park() ran is aborted by the state change
    # (docs/design.md, "From the scripted-callee lab", 1): it returns at once and does nothing.
    follow_up = None if message.early else app(channel, message.argument)
    channel.emit("CHANNEL_EXECUTE_COMPLETE", [
        ("Application", message.app), *data, ("Application-Response", _response(channel)),
        ("Application-UUID", message.event_uuid)])
    return follow_up


def _begin(channel: Channel, app: str, argument: str) -> None:
    channel.application, channel.application_data = app, argument
    channel.set_variable("current_application_response", None)
    channel.set_variable("current_application_data", argument or None)
    channel.set_variable("current_application", app)


def _response(channel: Channel) -> str:
    return channel.variables.get("current_application_response", "_none_")


# --- playing --------------------------------------------------------------------------------


def play_file(channel: Channel, target: str, break_on_digit: bool = False) -> str | None:
    """PLAYBACK_START, play, PLAYBACK_STOP; returns the digit that broke it, if one did."""
    if not channel.up:
        return None
    length = media.play_length_ms(target)
    kind = media.file_type(target)
    file_headers = ([("Playback-File-Type", kind)] if kind else []) + [
        ("Playback-File-Path", target)]
    channel.emit("PLAYBACK_START", file_headers)
    started = channel.switch.monotonic()
    if channel.answered_mono is not None:
        channel.switch.playbacks.append(
            (channel.uuid, channel.switch.scripted_ms(started - channel.answered_mono), target))
    digit: str | None = None
    if break_on_digit:
        try:
            digit = channel.dtmf.get(timeout=channel.switch.seconds(length))
        except Empty:
            digit = None
    else:
        channel.breaking.clear()
        gevent.wait([channel.ended, channel.breaking], timeout=channel.switch.seconds(length),
                    count=1)
        if channel.breaking.is_set() and channel.up:
            channel.breaking.clear()
            digit = ""  # cut short by uuid_break: stops as a break does, nothing pressed
    played = length if channel.up and digit is None else min(
        length, int(channel.switch.scripted_ms(channel.switch.monotonic() - started)))
    played = (played // 1000) * 1000 if not channel.up else played
    channel.variables.update({
        "playback_last_offset_pos": str(played * 8), "playback_seconds": str(played // 1000),
        "playback_ms": str(played), "playback_samples": str(played * 8)})
    status = "break" if digit is not None else "done"
    channel.emit("PLAYBACK_STOP", file_headers + [("Playback-Status", status)])
    return digit


def playback(channel: Channel, argument: str) -> AppResult:
    """playback: FILE PLAYED, or PLAYBACK ERROR when the channel hung up during it — the
    callee's BYE (recorded) or robocall's uuid_kill alike: FreeSWITCH 1.11.1's play loop stops
    with SWITCH_STATUS_FALSE once the channel is no longer ready, whoever ended it
    (switch_ivr_play_file; mod_dptools' playback answers PLAYBACK ERROR for it)."""
    play_file(channel, argument)
    failed = not channel.up
    channel.set_variable("current_application_response",
                         "PLAYBACK ERROR" if failed else "FILE PLAYED")
    return None


def speak(channel: Channel, argument: str) -> AppResult:
    """speak engine|voice|text: no PLAYBACK events (as recorded), about 70 ms per character."""
    text = argument.split("|", 2)[-1]
    channel.wait(len(text) * media.TTS_MS_PER_CHAR)
    return None


# --- play_and_get_digits --------------------------------------------------------------------


def play_and_get_digits(channel: Channel, argument: str) -> AppResult:
    """Prompt, collect, check against the regexp, retry with the invalid prompt.

    Judged as FreeSWITCH does (esl-gather-*.txt): each try clears read_result and the variable;
    a valid input sets ``<var>`` and ``read_result=success``; an invalid one sets
    ``read_result=success`` and ``<var>_invalid`` (left stale after a later valid try); no input
    sets ``read_result=failure``. The invalid prompt follows every failed try, the last included.
    """
    try:
        args = media.parse_pagd(argument)
    except ValueError:
        return None
    channel.set_variable(args.invalid_variable, None)
    _drain(channel)
    channel.collecting = True
    try:
        for _ in range(args.tries):
            channel.set_variable("read_result", None)
            channel.set_variable(args.variable, None)
            digits, done = _read(channel, args)
            if not channel.up:
                channel.set_variable("read_result", "failure")
                return None
            if done:
                return None
            if digits:
                channel.set_variable(args.invalid_variable, digits)
            if args.invalid_prompt:
                play_file(channel, args.invalid_prompt)
            if not channel.up:
                return None
    finally:
        channel.collecting = False
    return None


def _read(channel: Channel, args: media.PagdArgs) -> tuple[str, bool]:
    """One try: (digits collected, whether they were valid and the app is done)."""
    channel.prompt_started()
    first = play_file(channel, args.prompt, break_on_digit=True) if args.prompt else None
    digits, terminator = "", ""
    if first is not None:
        if first in args.terminators:
            terminator = first
        else:
            digits = first
    while channel.up and not terminator and len(digits) < args.max_digits:
        timeout = args.digit_timeout_ms if digits else args.timeout_ms
        try:
            digit = channel.dtmf.get(timeout=channel.switch.seconds(timeout))
        except Empty:
            break
        if digit is None:
            break
        if digit in args.terminators:
            terminator = digit
        else:
            digits += digit
    if not channel.up:
        return digits, False
    if terminator:
        channel.set_variable("read_terminator_used", terminator)
    success = bool(digits) and len(digits) >= args.min_digits
    channel.set_variable("read_result", "success" if success else "failure")
    if not success:
        return "", False
    if media.digits_match(digits, args.regexp):
        channel.set_variable(args.variable, digits)
        return digits, True
    return digits, False


def _drain(channel: Channel) -> None:
    while True:
        try:
            channel.dtmf.get_nowait()
        except Empty:
            return


# --- bridge -----------------------------------------------------------------------------------


def bridge(channel: Channel, argument: str) -> AppResult:
    """Dial a B leg and bridge it; outcome variables as esl-transfer-*.txt record them."""
    from robocall.testing.bridging import run_bridge

    return run_bridge(channel, parse_dial_string(argument))


def continues_after(channel: Channel, cause: str) -> bool:
    """Whether a failed bridge leaves the A leg up (continue_on_fail, an always-on cause)."""
    if cause in _ALWAYS_CONTINUE:
        return True
    setting = channel.variables.get("continue_on_fail", "")
    return setting == "true" or cause in setting.split(",")


def dialstatus(cause: str) -> str:
    """DIALSTATUS for a bridge outcome."""
    return _DIALSTATUS.get(cause, "CHANUNAVAIL")


# --- small applications -----------------------------------------------------------------------


def record_session(channel: Channel, argument: str) -> AppResult:
    """Start recording (returns at once; RECORD_STOP and the file come at hangup)."""
    from robocall.testing.channels import Recording

    channel.recording = Recording(argument.split()[0], channel.switch.monotonic())
    channel.emit("RECORD_START", [("Record-File-Path", channel.recording.path)])
    return None


def hangup(channel: Channel, argument: str) -> AppResult:
    """hangup [cause]."""
    channel.hangup(argument.strip() or "NORMAL_CLEARING", "send_bye")
    return None


def set_variable(channel: Channel, argument: str) -> AppResult:
    """set name=value (an empty value unsets)."""
    name, _, value = argument.partition("=")
    channel.set_variable(name.strip(), value or None)
    return None


def unset_variable(channel: Channel, argument: str) -> AppResult:
    """unset name."""
    channel.set_variable(argument.strip(), None)
    return None


def sleep(channel: Channel, argument: str) -> AppResult:
    """sleep N (ms)."""
    channel.wait(int(argument) if argument.strip().isdigit() else 0)
    return None


def nothing(channel: Channel, argument: str) -> AppResult:
    """park / answer / pre_answer on a parked, answered leg: nothing changes."""
    return None


APPS: dict[str, Callable[[Channel, str], AppResult]] = {
    "playback": playback, "speak": speak, "play_and_get_digits": play_and_get_digits,
    "bridge": bridge, "record_session": record_session, "hangup": hangup,
    "set": set_variable, "export": set_variable, "unset": unset_variable, "sleep": sleep,
    "park": nothing, "answer": nothing, "pre_answer": nothing,
}
