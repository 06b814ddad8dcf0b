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


def test_speech_seconds_leave_the_padding_out(speech: Speech) -> None:
    said = decode(speech.en_wav, 60)
    audio = np.concatenate([sounds.silence(4.0), said, sounds.silence(4.0)])
    found = voice.found_chunks(audio, 0.35)
    chunks, seconds = voice.speech(audio, 0.35, 1500)
    assert len(found) == len(chunks) == 1
    assert chunks[0]["start"] == found[0]["start"] - 3 * SAMPLE_RATE // 2
    assert chunks[0]["end"] == found[0]["end"] + 3 * SAMPLE_RATE // 2
    assert seconds == voice.voiced_seconds(found) < said.size / SAMPLE_RATE + 0.1
    # the padding stops at the ends of the audio
    assert voice.widen(found, 10_000, audio.size) == [{"start": 0, "end": audio.size}]


def test_only_long_non_speech_is_cut(speech: Speech) -> None:
    """The default padding (STT_VAD_PAD_MS) keeps a 2.5 s musical pause between sentences, as
    context for the model, and cuts a 20 s music intro but for the padding."""
    pad = 1500  # STT_VAD_PAD_MS=1500: the trade-off the README describes
    said = decode(speech.en_wav, 60)
    pause = np.concatenate([said, sounds.music(2.5), said])
    assert len(voice.voiced_chunks(pause, 0.35, pad)) == 1
    intro = np.concatenate([sounds.music(20.0), said])
    chunks = voice.voiced_chunks(intro, 0.35, pad)
    assert len(chunks) == 1 and 17 * SAMPLE_RATE < chunks[0]["start"] < 20 * SAMPLE_RATE


def test_real_speech_under_loud_noise_reaches_the_model_whole() -> None:
    """At 0 dB the VAD's edges fall inside the words: with faster-whisper's 400 ms of padding
    the last word of the alsa-utils recording under pink noise was cut ("side left" for "side
    right"); with the default padding the model hears all of it, as without a VAD. (Under music
    at 0 dB the VAD misses its last 3 s outright; no padding short of the whole file helps.)"""
    rec = sounds.alsa_speech()
    audio = sounds.pad(rec.audio, 1.0, 1.0)
    loud = sounds.mix(audio, sounds.pink(audio.size / SAMPLE_RATE), 0)
    whole = [{"start": 0, "end": loud.size}]
    assert voice.voiced_chunks(loud, 0.35, 1500) == whole
    assert voice.voiced_chunks(loud, 0.35, 400) != whole
