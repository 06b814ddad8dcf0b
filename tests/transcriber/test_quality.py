"""The guards of quality.py on text alone (fast): loops, empty segments, the phrase list."""

from __future__ import annotations

import pytest

from stt_common.messages import RemovalReason
from stt_transcriber import quality
from stt_transcriber.quality import Phrase, cut_loops, known_hallucination, phrases, screen

ALL_PHRASES = [p for entries in phrases().values() for p in entries]
SPEECH = lambda: 1.0  # noqa: E731 - the strict VAD finds the segment voiced throughout
NO_VOICE = lambda: 0.0  # noqa: E731


def never(*_: object) -> float:
    raise AssertionError("the VAD was asked about a segment that matched no phrase")


@pytest.mark.parametrize(
    ("text", "kept", "only_loop"),
    [
        # Seen on synthetic music with language "vi" (old defaults): the loop goes, the rest stays.
        ("Để không bỏ lỡ lỡ lỡ lỡ lỡ lỡ lỡ lỡ l", "Để không bỏ lỡ", False),
        # Seen on a chord pad with "en": nothing but the loop.
        ("I'm sorry, I'm sorry, I'm sorry, I'm sorry.", "I'm sorry,", True),
        ("go go go go go home", "go home", False),
        ("la la la la la la la la", "la", True),
        ("哈哈哈哈哈哈哈哈哈哈", "哈", False),
    ],
)
def test_loops_are_cut_to_one_occurrence(text: str, kept: str, only_loop: bool) -> None:
    cut = cut_loops(text)
    assert (cut.kept, cut.only_loop) == (kept, only_loop)
    assert cut.removed


@pytest.mark.parametrize(
    "text",
    [
        "no, no, no",  # three times is speech, not a loop
        "the quick brown fox jumps over the lazy dog",
        "one two one two one two",
        "we will we will rock you",
        "",
    ],
)
def test_speech_is_not_a_loop(text: str) -> None:
    cut = cut_loops(text)
    assert (cut.kept, cut.removed, cut.only_loop) == (" ".join(text.split()), "", False)


def test_a_segment_that_is_only_a_loop_is_dropped_and_reported() -> None:
    verdict = screen(1.0, 4.0, "la la la la la la", "en", 0.0, never)
    assert verdict.text is None
    assert [(r.reason, r.text, r.start, r.end) for r in verdict.removed] == [
        (RemovalReason.REPETITION, "la la la la la la", 1.0, 4.0)
    ]


def test_a_cut_loop_is_reported_and_the_rest_kept() -> None:
    verdict = screen(0.0, 2.0, "go go go go go home", "en", 0.0, never)
    assert verdict.text == "go home"
    assert [(r.reason, r.text) for r in verdict.removed] == [
        (RemovalReason.REPETITION, "go go go go")
    ]


def test_a_segment_without_words_is_dropped() -> None:
    verdict = screen(0.0, 2.0, "...", "en", 0.0, never)
    assert verdict.text is None
    assert [r.reason for r in verdict.removed] == [RemovalReason.NO_WORDS]


def test_the_phrase_file_is_well_formed() -> None:
    assert {"vi", "en", "de", "ru"} <= set(phrases())
    for phrase in ALL_PHRASES:
        assert phrase.match in ("exact", "prefix", "contains"), phrase
        assert quality.normalise(phrase.text), phrase


@pytest.mark.parametrize("phrase", ALL_PHRASES, ids=lambda p: f"{p.language}:{p.text}")
def test_each_listed_phrase_is_removed_over_no_speech_and_kept_over_speech(
    phrase: Phrase,
) -> None:
    # As the model writes it: capitalised, with punctuation, maybe followed by more words.
    text = phrase.text[0].upper() + phrase.text[1:] + "!"
    if phrase.match != "exact":
        text = f"{text} abc"
        if phrase.match == "contains":
            text = f"abc {text}"
    assert known_hallucination(text, phrase.language) is not None, text
    # The model itself doubts there was speech: removed.
    by_model = screen(0.0, 3.0, text, phrase.language, 0.8, SPEECH)
    assert by_model.text is None
    assert [r.reason for r in by_model.removed] == [RemovalReason.KNOWN_HALLUCINATION]
    # The model is sure, but the VAD finds no voice under it: removed.
    assert screen(0.0, 3.0, text, phrase.language, 0.05, NO_VOICE).text is None
    # Real speech saying it: kept, word for word.
    kept = screen(0.0, 3.0, text, phrase.language, 0.05, SPEECH)
    assert (kept.text, kept.removed) == (text, [])


def test_phrases_are_per_language_and_whole_words() -> None:
    assert known_hallucination("Thanks for watching!", "en") is not None
    assert known_hallucination("Thanks for watching!", "vi") is None  # not a Vietnamese one
    assert known_hallucination("You", "en") is not None
    assert known_hallucination("You know what I mean", "en") is None  # exact means exact
    assert known_hallucination("Thanks for watchingmen", "en") is None  # prefix: whole words
    assert known_hallucination("hãy SUBSCRIBE cho kênh Ghiền Mì Gõ", "vi") is not None


def test_a_speechless_chunk_decoded_only_by_sampling_is_dropped() -> None:
    # As low babble came back at random: no_speech_prob 0.80, temperature fallback to 0.2.
    sampled = screen(0.0, 2.0, "I'm a good man.", "en", 0.8, never, temperature=0.2)
    assert sampled.text is None
    assert [r.reason for r in sampled.removed] == [RemovalReason.NO_SPEECH]
    # Greedy decoding that passed its checks is the model's best reading: kept.
    assert screen(0.0, 2.0, "I'm a good man.", "en", 0.8, never, temperature=0.0).text
    assert screen(0.0, 2.0, "I'm a good man.", "en", 0.3, never, temperature=0.4).text


def test_a_listed_phrase_said_twice_matches_as_once() -> None:
    assert known_hallucination("I'm sorry, I'm sorry.", "en") is not None
    assert known_hallucination("I'm sorry, I'm sorry, I'm late.", "en") is None


def test_a_segment_over_the_padding_only_needs_evidence_of_voice() -> None:
    """Text wholly over the VAD's padding is dropped unless the lower-threshold VAD finds its
    audio voiced; a segment over a found chunk is not asked about (padding_voice None)."""
    over_music = screen(10.0, 12.0, "Thank you so much.", "en", 0.1, never, 0.0, NO_VOICE)
    assert over_music.text is None
    assert [r.reason for r in over_music.removed] == [RemovalReason.UNVOICED]
    missed_speech = screen(13.0, 16.0, "side left side right", "en", 0.4, never, 0.0, SPEECH)
    assert (missed_speech.text, missed_speech.removed) == ("side left side right", [])
    assert screen(1.0, 2.0, "hello", "en", 0.1, never, 0.0, None).text == "hello"
