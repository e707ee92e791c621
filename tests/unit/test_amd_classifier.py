"""The decision rules of answering-machine detection, one by one, on frames given by hand."""

from __future__ import annotations

from robocall.amd.classifier import AnsweredBy, Classifier, Rules, classify
from robocall.amd.features import FRAME_MS, FrameFeatures

SPEECH = FrameFeatures(speech=True)
QUIET = FrameFeatures(speech=False)


def beep(hz: float = 1000.0) -> FrameFeatures:
    return FrameFeatures(speech=False, tone_hz=hz)


def frames(*parts: tuple[FrameFeatures, int]) -> list[FrameFeatures]:
    """(frame, ms) runs -> one frame per 20 ms."""
    return [frame for frame, ms in parts for _ in range(ms // FRAME_MS)]


def test_hello_then_silence_is_a_person() -> None:
    # Given 0.4 s of silence, a 0.6 s "Hello?" and the silence of someone waiting
    result = classify(frames((QUIET, 400), (SPEECH, 600), (QUIET, 3000)))
    # Then a person answered, decided once the short answer's silence (300 ms) had passed
    assert result.verdict is not None
    assert result.verdict.answered_by is AnsweredBy.HUMAN
    assert result.verdict.at_ms == 400 + 600 + 300
    assert result.done


def test_a_longer_answer_needs_a_longer_silence() -> None:
    # Given a 2 s answer followed by 600 ms of silence (a greeting's pause between sentences)
    classifier = classify(frames((QUIET, 300), (SPEECH, 2000), (QUIET, 600)))
    # Then nothing is decided yet; 650 ms of silence makes it a person
    assert classifier.verdict is None
    for _ in range(3):
        classifier.feed(QUIET)
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.HUMAN
    assert classifier.verdict.at_ms == 300 + 2000 + 660


def test_a_long_greeting_is_a_machine_before_it_ends() -> None:
    # Given a greeting of 6 s with short pauses between its sentences
    classifier = classify(
        frames((QUIET, 300), (SPEECH, 2000), (QUIET, 300), (SPEECH, 3700), (QUIET, 5000))
    )
    # Then a machine, decided once the utterance ran past 2.8 s — while it still spoke
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.MACHINE
    assert classifier.verdict.reason == "long greeting"
    assert classifier.verdict.at_ms == 300 + 2800 + FRAME_MS
    # And with no beep, the greeting ends after 2 s of silence
    assert classifier.greeting_end is not None
    assert classifier.greeting_end.by == "silence"
    assert classifier.greeting_end.at_ms == 300 + 6000 + 2000


def test_the_beep_ends_the_greeting() -> None:
    # Given a greeting, a short gap, a 500 ms beep, then silence
    classifier = classify(
        frames((QUIET, 200), (SPEECH, 4000), (QUIET, 600), (beep(), 500), (QUIET, 3000))
    )
    # Then the greeting ends with the beep, once no tone was heard for beep_end_quiet_ms
    assert classifier.greeting_end is not None
    assert classifier.greeting_end.by == "beep"
    assert classifier.greeting_end.at_ms == 200 + 4000 + 600 + 500 + Rules().beep_end_quiet_ms


def test_a_beep_broken_by_a_frame_of_noise_goes_on() -> None:
    # Given a beep whose tone is lost for one frame (line noise) and then heard again
    classifier = classify(frames((QUIET, 200), (SPEECH, 4000), (QUIET, 600), (beep(), 300),
                                 (QUIET, 20), (beep(), 300), (QUIET, 3000)))
    # Then the greeting ends after the whole beep, not at the gap
    assert classifier.greeting_end is not None
    assert classifier.greeting_end.by == "beep"
    end_of_tone = 200 + 4000 + 600 + 300 + 20 + 300
    assert classifier.greeting_end.at_ms == end_of_tone + Rules().beep_end_quiet_ms


def test_a_beep_alone_is_a_machine() -> None:
    classifier = classify(frames((QUIET, 300), (beep(850), 400), (QUIET, 1000)))
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.MACHINE
    assert classifier.verdict.reason == "beep"


def test_a_tone_whose_pitch_wanders_is_no_beep() -> None:
    # Given tone-like frames that change frequency every frame (a whistle, a chirp)
    wandering = [beep(500 + 200 * (i % 2)) for i in range(20)]
    classifier = Classifier()
    for frame in wandering:
        classifier.feed(frame)
    # Then no beep is heard (and nothing is decided yet)
    assert classifier.verdict is None


def test_silence_is_unknown() -> None:
    classifier = classify(frames((QUIET, 5000)))
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.UNKNOWN
    assert classifier.verdict.at_ms == Rules().initial_silence_ms


def test_a_click_is_not_a_word() -> None:
    # Given a 60 ms burst of noise, then silence, then "Hello?" late
    classifier = classify(frames((SPEECH, 60), (QUIET, 1500), (SPEECH, 600), (QUIET, 1000)))
    # Then the burst is forgotten: the verdict follows the hello's own silence
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.HUMAN
    assert classifier.verdict.at_ms == 60 + 1500 + 600 + 300


def test_a_pause_shorter_than_its_utterance_asks_keeps_the_utterance_going() -> None:
    # Given 2.5 s of speech, a 600 ms pause (650 ms are asked after so long an utterance), more
    classifier = classify(frames((SPEECH, 2500), (QUIET, 600), (SPEECH, 400)))
    # Then the pause did not end it: one utterance past 2.8 s, a greeting
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.MACHINE
    assert classifier.verdict.at_ms == 2500 + 600 + FRAME_MS  # at its first word


def test_no_verdict_by_the_bound_is_unknown() -> None:
    rules = Rules(max_detection_ms=1000)
    classifier = classify(frames((SPEECH, 900), (QUIET, 300)), rules)
    assert classifier.verdict is not None
    assert classifier.verdict.answered_by is AnsweredBy.UNKNOWN
    assert (classifier.verdict.at_ms, classifier.verdict.reason) == (1000, "undecided")


def test_nothing_is_fed_after_done() -> None:
    classifier = classify(frames((QUIET, 400), (SPEECH, 600), (QUIET, 400)))
    assert classifier.done
    assert classifier.feed(SPEECH) == []
