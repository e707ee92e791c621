"""How a personalised message is cut into pieces and where its pauses go (pure)."""

from __future__ import annotations

import array

import pytest

from robocall.calls.prompts import runs, template_of
from robocall.tts.join import (
    CLAUSE_PAUSE_MS,
    SENTENCE_PAUSE_MS,
    TRIM_MARGIN_MS,
    WORD_GAP_MS,
    Piece,
    split_pieces,
    trim_to_speech,
)

SEED_GATHER = "Dear Mr {{name}}, the amount of {{amount}} will be due on {{dueDate}}"
SEED_VALUES = {"name": "Alex", "amount": "200,000$", "dueDate": "August 20th, 2020"}


def test_the_runs_of_a_template_are_the_rendered_message() -> None:
    template = template_of(SEED_GATHER)
    assert "".join(runs(template, SEED_VALUES)) == template.render(SEED_VALUES)


def test_the_seed_message_is_cut_at_its_placeholders_and_paused_by_its_punctuation() -> None:
    pieces = split_pieces(runs(template_of(SEED_GATHER), SEED_VALUES))
    assert pieces == [
        Piece("Dear Mr", 0),
        Piece("Alex", WORD_GAP_MS),
        Piece(", the amount of", CLAUSE_PAUSE_MS),
        Piece("200,000$", WORD_GAP_MS),
        Piece("will be due on", WORD_GAP_MS),
        Piece("August 20th, 2020", WORD_GAP_MS),
    ]


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        # punctuation alone between placeholders is a pause, not a piece
        ("{{first}}, {{last}}", {"first": "Ann", "last": "Lee"},
         [Piece("Ann", 0), Piece("Lee", CLAUSE_PAUSE_MS)]),
        ("Hello {{first}}. Bye", {"first": "Ann"},
         [Piece("Hello", 0), Piece("Ann", WORD_GAP_MS), Piece(". Bye", SENTENCE_PAUSE_MS)]),
        # a value with nothing to say is skipped; what it writes is the pause
        ("Hi {{last}} {{first}}", {"first": "Ann", "last": " - "},
         [Piece("Hi", 0), Piece("Ann", CLAUSE_PAUSE_MS)]),
        ("Hi {{last}} {{first}}", {"first": "Ann", "last": ""},
         [Piece("Hi", 0), Piece("Ann", WORD_GAP_MS)]),
        # a value's own trailing punctuation sets the pause after it
        ("{{first}} there", {"first": "Ann!"},
         [Piece("Ann!", 0), Piece("there", SENTENCE_PAUSE_MS)]),
    ],
)  # fmt: skip
def test_pauses_come_from_what_is_written_at_each_joint(
    text: str, values: dict[str, str], expected: list[Piece]
) -> None:
    assert split_pieces(runs(template_of(text), values)) == expected


def test_trimming_keeps_the_speech_and_a_short_margin() -> None:
    rate = 8000
    margin = rate * TRIM_MARGIN_MS // 1000
    speech = array.array("h", [3000, -3000] * 400)
    samples = array.array("h", [0] * 1500) + speech + array.array("h", [5] * 1700)
    trimmed = trim_to_speech(samples, rate)
    assert len(trimmed) == len(speech) + 2 * margin
    assert trimmed[margin : margin + len(speech)] == speech
    assert len(trim_to_speech(array.array("h", [0] * 900), rate)) == 0
