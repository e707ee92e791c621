"""What the switch's events mean for a call's flow, and what the flow's actions are on the
switch: pure functions between Event Socket values and flow machine values.

Held to the recorded transcripts (tests/unit/test_calls_translate.py): play_and_get_digits is
judged by the variable it sets, not read_result; a bridge by originate_disposition; a playback
by its Application-Response; times by the switch's own Caller-Channel-*-Time headers.
"""

from __future__ import annotations

from robocall.calls.dialplan import DialPlan
from robocall.esl import commands
from robocall.esl.protocol import Event
from robocall.flow.actions import CollectDigits
from robocall.flow.events import TransferStatus
from robocall.flow.model import Transfer, TransferKind
from robocall.store.records import CallTicket

DIGITS_VARIABLE = "robocall_digits"
# Any keys: the flow machine, not FreeSWITCH, decides what the input means.
ANY_KEYS = "[0-9*#]+"
# Played by play_and_get_digits after invalid input; the machine replays the real prompt.
NO_INVALID_PROMPT = "silence_stream://250"

# FreeSWITCH's originate_disposition after a bridge, as a transfer_status.
_BRIDGE_OUTCOMES = {
    "SUCCESS": TransferStatus.ANSWERED,
    "USER_BUSY": TransferStatus.BUSY,
    "NO_ANSWER": TransferStatus.NO_ANSWER,
    "NO_USER_RESPONSE": TransferStatus.NO_ANSWER,
    "ORIGINATOR_CANCEL": TransferStatus.NO_ANSWER,
    "ALLOTTED_TIMEOUT": TransferStatus.NO_ANSWER,
}


# --- events -> what happened ------------------------------------------------------------------


def prompt_played(completion: Event) -> bool:
    """Whether a playback's CHANNEL_EXECUTE_COMPLETE says the file played to its end."""
    return completion.get("Application-Response") == "FILE PLAYED"


def collected_digits(completion: Event) -> str:
    """The digits a play_and_get_digits try collected ("" for none)."""
    return completion.get(f"variable_{DIGITS_VARIABLE}") or ""


def bridge_outcome(completion: Event) -> TransferStatus:
    """How a bridge ended, from its CHANNEL_EXECUTE_COMPLETE."""
    disposition = completion.get("variable_originate_disposition") or ""
    return _BRIDGE_OUTCOMES.get(disposition, TransferStatus.FAILED)


def originate_failure(job_body: str) -> str | None:
    """The cause of a failed originate from its BACKGROUND_JOB body; None when it succeeded."""
    text = job_body.strip()
    if text.startswith("+OK"):
        return None
    if text.startswith("-ERR") and len(text) > 4:
        return text[4:].split()[0]
    return "FAILURE"


def switch_time(event: Event, header: str) -> float | None:
    """A ``Caller-Channel-*-Time`` header (microseconds since the epoch) in seconds; None
    while it is unset ("0") or missing."""
    raw = event.get(header) or ""
    return int(raw) / 1_000_000 if raw.isdigit() and int(raw) > 0 else None


# --- actions -> application arguments -----------------------------------------------------------


def collect_digits_argument(action: CollectDigits, prompt: str) -> str:
    """play_and_get_digits' argument for one try of a gather, playing ``prompt``."""
    return commands.play_and_get_digits_arg(
        min_digits=action.min_digits,
        max_digits=action.max_digits,
        tries=1,
        timeout_ms=action.timeout_ms,
        # A branch whose digits use '#' leaves no key to end the input with.
        terminators=action.terminators or commands.NO_TERMINATORS,
        prompt=prompt,
        invalid_prompt=NO_INVALID_PROMPT,
        variable=DIGITS_VARIABLE,
        digits_regex=ANY_KEYS,
        digit_timeout_ms=action.digit_timeout_ms,
    )


def bridge_argument(
    ticket: CallTicket, transfer: Transfer, dial_plan: DialPlan, timeout_seconds: int
) -> str:
    """bridge's argument: the transfer's dial string with the call's caller id and marks."""
    variables: list[tuple[str, str]] = [
        ("origination_caller_id_number", ticket.caller),
        ("originate_timeout", str(timeout_seconds)),
        ("robocall_call_id", str(ticket.call_id)),
        ("robocall_request_id", commands.channel_text(ticket.request_id)),
    ]
    if transfer.kind is TransferKind.NUMBER:
        # A transfer to a number takes a second line of the organization's.
        variables.append(ticket.line_variable)
    return commands.channel_variables(variables) + dial_plan.transfer(transfer)
