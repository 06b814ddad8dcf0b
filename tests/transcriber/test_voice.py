"""The engine's own VAD pass (voice.py): chunks, slicing, and the strict voiced share."""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import get_speech_timestamps

from stt_testing import sounds
from stt_transcriber import voice
from stt_transcriber.decode import SAMPLE_RATE, decode
from tests.transcriber.conftest import Speech


def test_no_voice_no_chunks() -> None:
    for make in (sounds.silence, sounds.pink, sounds.music, sounds.hum50):
        assert voice.voiced_chunks(make(5.0)) == [], make.__name__
    assert voice.voiced_chunks(np.zeros(0, np.float32)) == []


def test_speech_across_a_slice_boundary_is_one_chunk(speech: Speech) -> None:
    said = decode(speech.en_wav, 60)
    start = voice.SLICE_SAMPLES - 4 * SAMPLE_RATE  # 4 s before the boundary, ~6 s after it
    audio = np.zeros(voice.SLICE_SAMPLES * 2 + 1000, np.float32)
    audio[start : start + said.size] = said
    chunks = voice.voiced_chunks(audio)
    whole = get_speech_timestamps(audio, voice.SPEECH, sampling_rate=SAMPLE_RATE)
    assert len(chunks) == len(whole) == 1, (chunks, whole)
    assert abs(chunks[0]["start"] - whole[0]["start"]) < SAMPLE_RATE * 0.1
    assert abs(chunks[0]["end"] - whole[0]["end"]) < SAMPLE_RATE * 0.1
    assert voice.voiced_seconds(chunks) > said.size / SAMPLE_RATE * 0.8
    joined = voice.join(audio, chunks)
    assert joined.size == chunks[0]["end"] - chunks[0]["start"]


def test_voiced_share(speech: Speech) -> None:
    said = decode(speech.en_wav, 60)
    audio = np.concatenate([said, sounds.music(5.0)])
    seconds = said.size / SAMPLE_RATE
    assert voice.voiced_share(audio, 0.5, seconds - 0.5) > 0.5
    assert voice.voiced_share(audio, seconds + 0.5, seconds + 4.5) < 0.2
    assert voice.voiced_share(audio, 100.0, 101.0) == 0.0
