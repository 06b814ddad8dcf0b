"""The real faster-whisper engine on espeak-ng speech, and the fake engine other tests use."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stt_transcriber.engine import Engine, WhisperEngine
from stt_transcriber.errors import JobError
from stt_transcriber.fake_engine import FakeEngine
from tests.speech import ENGLISH, VIETNAMESE, wer
from tests.transcriber.conftest import Speech

# Measured with the base model, int8 on CPU, beam 5: 0.07 (wav, ogg) and 0.14 (mp3);
# Vietnamese 0.63 (espeak's Vietnamese is hard to understand).
ENGLISH_MAX_WER = 0.3
VIETNAMESE_MAX_WER = 0.8


def test_model_loads_once_and_quickly(whisper_engine: WhisperEngine) -> None:
    assert 0 < whisper_engine.load_seconds < 30


@pytest.mark.parametrize("kind", ["en_wav", "en_mp3", "en_ogg"])
def test_english_speech(whisper_engine: WhisperEngine, speech: Speech, kind: str) -> None:
    progress: list[float] = []
    result = whisper_engine.transcribe(getattr(speech, kind), "en", progress.append)
    assert wer(ENGLISH, result.text) < ENGLISH_MAX_WER, result.text
    assert 0 < result.confidence <= 1
    assert result.duration == pytest.approx(9.7, abs=0.3)
    assert result.language == "en" and result.language_probability == 1
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    assert result.segments and result.segments[0].start < 1
    assert result.segments[-1].end <= result.duration + 0.5
    assert " ".join(s.text for s in result.segments) == result.text


def test_auto_detects_english(whisper_engine: WhisperEngine, speech: Speech) -> None:
    result = whisper_engine.transcribe(speech.en_wav, "auto")
    assert result.language == "en"
    assert 0.5 < result.language_probability <= 1
    assert wer(ENGLISH, result.text) < ENGLISH_MAX_WER


def test_vietnamese_speech(whisper_engine: WhisperEngine, speech: Speech) -> None:
    result = whisper_engine.transcribe(speech.vi_wav, "vi")
    assert result.text
    assert result.language == "vi"
    assert wer(VIETNAMESE, result.text) < VIETNAMESE_MAX_WER, result.text
    assert 0 < result.confidence <= 1


def test_unsupported_language(whisper_engine: WhisperEngine, speech: Speech) -> None:
    with pytest.raises(JobError) as caught:
        whisper_engine.transcribe(speech.en_wav, "xx")
    assert (caught.value.error_type, caught.value.transient) == ("unsupported_language", False)


def test_undecodable_file(whisper_engine: WhisperEngine, tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"RIFF" + b"\x00" * 4000)
    with pytest.raises(JobError) as caught:
        whisper_engine.transcribe(path, "en")
    assert caught.value.error_type == "invalid_media"


def test_fake_engine_is_deterministic(speech: Speech) -> None:
    engine: Engine = FakeEngine()
    progress: list[float] = []
    result = engine.transcribe(speech.en_wav, None, progress.append)
    assert result.text == "fake transcript of en.wav"
    assert result.duration == pytest.approx(9.7, abs=0.3)
    assert result.language == "en"
    assert progress[-1] == 1.0
    assert engine.transcribe(speech.en_wav, "vi").language == "vi"


def test_fake_engine_delay_and_failure(tmp_path: Path) -> None:
    path = tmp_path / "raw.bin"
    path.write_bytes(b"\x01" * 64_000)
    engine = FakeEngine(delay=0.2, fail_with=JobError("boom", "internal", transient=True))
    progress: list[float] = []
    started = time.monotonic()
    with pytest.raises(JobError, match="boom"):
        engine.transcribe(path, "en", progress.append)
    assert time.monotonic() - started >= 0.1
    assert progress and max(progress) <= 0.5
    assert engine.calls == [(path, "en")]
    ok = FakeEngine().transcribe(path, "en")
    assert ok.duration == pytest.approx(2.0)  # from the size, as PCM, when PyAV cannot read it
