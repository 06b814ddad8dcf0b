"""The cross-job batched engine on real speech, against the sequential engine's output.

One batch holds English and Vietnamese espeak speech with their own requested languages, real
recorded speech (alsa-utils, CMU ARCTIC) with "auto", a ~45 s file that makes two clips, a job
with a prompt and hotwords, and a file that is not audio: each job's result must match what the
sequential engine gives it alone, and the broken one fails alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stt_testing import sounds
from stt_testing.speech import wer
from stt_transcriber.batch_clips import CLIP_SECONDS, BatchItem, group
from stt_transcriber.batch_engine import BatchEngine, eligible
from stt_transcriber.decode import SAMPLE_RATE, decode
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import Transcript, WhisperEngine
from stt_transcriber.errors import JobError
from tests.transcriber.conftest import REPO, Speech

# Measured against the sequential engine (base, int8, beam 5): 0.0 on every clip of one window,
# 0.0 on the two-clip file (the clips are cut at VAD pauses, as sequential windows are not).
MAX_WER_VS_SEQUENTIAL = 0.1


@pytest.fixture(scope="module")
def files(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch")
    cache = Path(os.environ.get("STT_CACHE_DIR") or REPO / ".cache")
    real = sounds.real_speech(cache)
    gap = np.zeros(SAMPLE_RATE, np.float32)
    real_joined = np.concatenate([real[0].audio, gap, real[1].audio])
    english = decode(speech.en_wav, 60)
    two_clips = np.concatenate([english, gap, real_joined, gap, english])
    (d / "broken.wav").write_bytes(b"RIFF" + b"not audio at all" * 64)
    return {
        "en": speech.en_wav,
        "vi": speech.vi_wav,
        "real": sounds.write_wav(real_joined, d / "real.wav"),
        "two_clips": sounds.write_wav(two_clips, d / "two.wav"),
        "broken": d / "broken.wav",
    }


def test_clips_are_at_most_30_s_and_cover_every_chunk() -> None:
    audio = np.zeros(100 * SAMPLE_RATE, np.float32)
    chunks = [
        {"start": 0, "end": 70 * SAMPLE_RATE},
        {"start": 80 * SAMPLE_RATE, "end": 90 * SAMPLE_RATE},
    ]
    clips = group(audio, chunks, CLIP_SECONDS)
    sizes = [sum(c["end"] - c["start"] for c in clip) for clip in clips]
    assert all(size <= CLIP_SECONDS * SAMPLE_RATE for size in sizes)
    assert sum(sizes) == 80 * SAMPLE_RATE
    assert len(clips) == 3  # 30 + 30 + (10 + 10)


def test_word_timestamps_keep_the_sequential_path() -> None:
    assert eligible(DecodeOptions())
    assert not eligible(DecodeOptions(word_timestamps=True))


def test_a_batch_matches_the_sequential_engine_job_by_job(
    whisper_engine: WhisperEngine, files: dict[str, Path]
) -> None:
    options = DecodeOptions(prompt="Front left, rear right.", hotwords="superlative")
    items = [
        BatchItem(files["en"], "en"),
        BatchItem(files["vi"], "vi"),
        BatchItem(files["real"], "auto"),
        BatchItem(files["broken"], "en"),
        BatchItem(files["two_clips"], None),
        BatchItem(files["real"], "en", options),
    ]
    batched = BatchEngine(whisper_engine).transcribe_many(items)
    assert len(batched) == len(items)
    broken = batched[3]
    assert isinstance(broken, JobError) and broken.error_type == "invalid_media"
    for item, got in zip(items, batched, strict=True):
        if item.path == files["broken"]:
            continue
        assert isinstance(got, Transcript), got
        alone = whisper_engine.transcribe(item.path, item.language, options=item.options)
        assert wer(alone.text, got.text) <= MAX_WER_VS_SEQUENTIAL, (got.text, alone.text)
        assert got.language == alone.language
        assert got.detected_language == alone.detected_language
        assert got.language_mismatch == alone.language_mismatch
        assert got.speech_seconds == alone.speech_seconds
        assert got.duration == pytest.approx(alone.duration)
        assert 0 < got.confidence <= 1
        assert all(0 <= s.start <= s.end <= got.duration + 0.01 for s in got.segments)
        assert [s.start for s in got.segments] == sorted(s.start for s in got.segments)
    two = batched[4]
    assert isinstance(two, Transcript)
    assert "superlative" in two.text.lower() and two.segments[-1].start > CLIP_SECONDS


def test_an_unsupported_language_and_a_cancelled_job_fail_alone(
    whisper_engine: WhisperEngine, files: dict[str, Path]
) -> None:
    items = [
        BatchItem(files["en"], "xx"),
        BatchItem(files["en"], "en", should_stop=lambda: True),
        BatchItem(files["en"], "en"),
    ]
    bad, cancelled, fine = BatchEngine(whisper_engine).transcribe_many(items)
    assert isinstance(bad, JobError) and bad.error_type == "unsupported_language"
    assert isinstance(cancelled, JobError) and cancelled.error_type == "cancelled"
    assert isinstance(fine, Transcript) and "lazy dog" in fine.text.lower()


def test_silence_gives_no_clip_and_no_text(whisper_engine: WhisperEngine, tmp_path: Path) -> None:
    quiet = sounds.write_wav(sounds.silence(12.0), tmp_path / "quiet.wav")
    (out,) = BatchEngine(whisper_engine).transcribe_many([BatchItem(quiet, "auto")])
    assert isinstance(out, Transcript)
    assert out.text == "" and out.speech_seconds == 0 and out.language is None
