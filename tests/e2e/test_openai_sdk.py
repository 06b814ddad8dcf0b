"""The official `openai` SDK against the real stack: upload, queue, the model, the answer."""

from __future__ import annotations

import html
from pathlib import Path

import openai
import pytest
import srt
import webvtt
from openai import OpenAI

from stt_testing import processes, speech
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
UPLOAD_LIMIT = 1_000_000  # bytes: the clips are ~100-300 kB; the oversized file 1.5 MB
SHORT_ENGLISH = "the quick brown fox jumps over the lazy dog"
# "Good morning, my name is Maria and I drink coffee every morning." espeak's German: the base
# model translated espeak's French and Spanish sentences tried into other sentences (or
# detected another language), its German into "Good morning, I'm Heiser Maria and I'm drinking
# a (little) morning coffee" with beam 1 and 5, greedy or sampled.
GERMAN = "guten Morgen, ich heiße Maria und ich trinke jeden Morgen Kaffee"
ENGLISH_WORDS = {"good", "morning", "coffee", "drink", "drinking", "every"}
GERMAN_WORDS = {"guten", "morgen", "ich", "trinke", "kaffee", "jeden"}
MAX_WER = 0.35  # measured 0 with beam 1 on this clip; espeak's voice costs a word at worst


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {"STT_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openai-clips")
    return {
        "english": speech.make_speech(SHORT_ENGLISH, "en-us", root / "fox.wav"),
        "german": speech.make_speech(GERMAN, "de", root / "german.wav"),
    }


@pytest.fixture(scope="module")
def client(stack: Stack) -> OpenAI:
    # No SDK retries: a test must see the first answer (and must not upload twice).
    return OpenAI(base_url=f"{stack.api.url}/v1", api_key=processes.API_KEY, max_retries=0)


def test_models_lists_the_served_model(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["whisper-base"]


def test_transcription_as_json_text_srt_and_vtt(
    client: OpenAI, short_clips: dict[str, Path]
) -> None:
    clip = short_clips["english"]
    with clip.open("rb") as f:
        as_json = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    assert speech.wer(SHORT_ENGLISH, as_json.text) < MAX_WER, as_json.text
    with clip.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and speech.wer(SHORT_ENGLISH, text) < MAX_WER, text
    with clip.open("rb") as f:
        as_srt = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="srt", language="en"
        )
    cues = list(srt.parse(as_srt))
    assert cues and cues[0].index == 1
    assert speech.wer(SHORT_ENGLISH, " ".join(c.content for c in cues)) < MAX_WER, as_srt
    with clip.open("rb") as f:
        as_vtt = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="vtt", language="en"
        )
    captions = list(webvtt.from_string(as_vtt))
    said = " ".join(html.unescape(c.text) for c in captions)
    assert speech.wer(SHORT_ENGLISH, said) < MAX_WER, as_vtt
    assert captions[-1].end_in_seconds <= 4.0  # the clip is ~3 s


def test_verbose_json_with_word_timestamps(client: OpenAI, short_clips: dict[str, Path]) -> None:
    with short_clips["english"].open("rb") as f:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            prompt="A pangram.",
        )
    assert result.language == "en" and result.duration == pytest.approx(2.9, abs=1.0)
    assert speech.wer(SHORT_ENGLISH, result.text) < MAX_WER, result.text
    assert result.segments and result.words
    for n, segment in enumerate(result.segments):
        assert segment.id == n and segment.tokens and segment.seek == 0
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
        assert segment.compression_ratio > 0 and segment.temperature == 0.0
        assert 0 <= segment.start < segment.end <= result.duration + 0.01
    words = result.words
    assert speech.wer(SHORT_ENGLISH, " ".join(w.word for w in words)) < MAX_WER, words
    times = [t for w in words for t in (w.start, w.end)]
    assert times == sorted(times) and times[-1] <= result.duration + 0.01
    raw = result.model_dump()
    assert set(raw) >= {"task", "language", "duration", "text", "segments", "words"}
    assert raw["task"] == "transcribe"


def test_translation_of_german_speech_is_english(
    client: OpenAI, short_clips: dict[str, Path]
) -> None:
    with short_clips["german"].open("rb") as f:
        result = client.audio.translations.create(
            model="whisper-1", file=f, response_format="verbose_json"
        )
    raw = result.model_dump()
    assert raw["task"] == "translate" and raw["language"] == "de", raw
    words = set(speech.normalise(result.text).split())
    assert len(words & ENGLISH_WORDS) >= 2, result.text
    assert not words & GERMAN_WORDS, result.text


def test_a_wrong_key_raises_authentication_error(stack: Stack) -> None:
    wrong = OpenAI(base_url=f"{stack.api.url}/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_an_oversized_file_is_refused(client: OpenAI, tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (UPLOAD_LIMIT + 500_000))
    with pytest.raises(openai.APIStatusError) as caught, big.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f)
    assert caught.value.status_code == 413
    assert caught.value.code == "file_too_large"
    assert "STT_MAX_UPLOAD_BYTES" in caught.value.message
