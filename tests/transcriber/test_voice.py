"""The engine's own VAD pass (voice.py): chunks, slicing, and the strict voiced share."""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.vad import get_speech_timestamps

from stt_common.settings import ModelSettings
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
    where = voice.speech(audio, 0.35, 1500)
    chunks, seconds = where.heard, where.seconds
    assert where.found == found
    assert len(found) == len(chunks) == 1
    assert chunks[0]["start"] == found[0]["start"] - 3 * SAMPLE_RATE // 2
    assert chunks[0]["end"] == found[0]["end"] + 3 * SAMPLE_RATE // 2
    assert seconds == voice.voiced_seconds(found) < said.size / SAMPLE_RATE + 0.1
    # the padding stops at the ends of the audio
    assert voice.widen(found, 10_000, audio.size) == [{"start": 0, "end": audio.size}]


@pytest.mark.model  # the VAD over real recordings: seconds of CPU, not the fast tier
def test_only_long_non_speech_is_cut(speech: Speech) -> None:
    """The default padding (STT_VAD_PAD_MS, STT_VAD_PAD_BEFORE_MS) keeps a 2.5 s musical pause
    between sentences, as context for the model, and cuts a 20 s music intro but for its last
    400 ms."""
    defaults = ModelSettings()
    pad, before = defaults.vad_pad_ms, defaults.vad_pad_before_ms
    said = decode(speech.en_wav, 60)
    pause = np.concatenate([said, sounds.music(2.5), said])
    assert len(voice.voiced_chunks(pause, 0.35, pad, before)) == 1
    intro = np.concatenate([sounds.music(20.0), said])
    chunks = voice.voiced_chunks(intro, 0.35, pad, before)
    found = voice.found_chunks(intro, 0.35)
    assert len(chunks) == 1 and 19.5 * SAMPLE_RATE < chunks[0]["start"] < 20 * SAMPLE_RATE
    assert chunks[0]["start"] == found[0]["start"] - before * SAMPLE_RATE // 1000


@pytest.mark.model  # the VAD over real recordings: seconds of CPU, not the fast tier
def test_real_speech_under_loud_noise_reaches_the_model_whole() -> None:
    """At 0 dB the VAD's edges fall inside the words: with faster-whisper's 400 ms of padding
    the last word of the alsa-utils recording under pink noise was cut ("side left" for "side
    right"); with the default padding the model hears all of it, as without a VAD. (Under music
    at 0 dB the VAD misses its last 3 s outright: the default 3 s after speech gives them back,
    test_engine_quality.test_words_at_a_chunk_edge_under_loud_music_are_kept.)"""
    defaults = ModelSettings()
    rec = sounds.alsa_speech()
    audio = sounds.pad(rec.audio, 1.0, 1.0)
    loud = sounds.mix(audio, sounds.pink(audio.size / SAMPLE_RATE), 0)
    whole = [{"start": 0, "end": loud.size}]
    assert voice.voiced_chunks(loud, 0.35, defaults.vad_pad_ms, defaults.vad_pad_before_ms) == whole
    assert voice.voiced_chunks(loud, 0.35, 400) != whole


def test_a_cut_stretch_keeps_only_its_end_before_speech() -> None:
    """STT_VAD_PAD_BEFORE_MS: where non-speech is cut out (longer than twice the padding, or than
    the padding at the start), only `before_ms` of it precedes the speech; the padding after
    speech and non-speech too short to be cut are kept whole."""
    s = SAMPLE_RATE
    found = [
        {"start": 2 * s, "end": 5 * s},  # 2 s in: within the padding of the start
        {"start": 9 * s, "end": 10 * s},  # 4 s after the last: within twice the padding
        {"start": 30 * s, "end": 32 * s},  # after 20 s of non-speech: cut before it
    ]
    size = 40 * s
    assert voice.widen(found, 3000, size) == [
        {"start": 0, "end": 13 * s},
        {"start": 27 * s, "end": 35 * s},
    ]
    assert voice.widen(found, 3000, size, before_ms=400) == [
        {"start": 0, "end": 13 * s},
        {"start": 30 * s - 2 * s // 5, "end": 35 * s},
    ]
    # never more before than after; equal sides as without before_ms
    assert voice.widen(found, 300, size, before_ms=400) == voice.widen(found, 300, size)
    late = [{"start": 10 * s, "end": 12 * s}]  # non-speech longer than the padding at the start
    assert voice.widen(late, 3000, size, before_ms=400)[0]["start"] == 10 * s - 2 * s // 5


def test_over_the_padding_only() -> None:
    """A segment is over the padding only when it lies within what the model heard and over
    none of what the VAD found voiced; one timed past the heard audio is not judged."""
    s = SAMPLE_RATE
    where = voice.Speech(
        heard=[{"start": 0, "end": 5 * s}], found=[{"start": s, "end": 2 * s}], seconds=1.0
    )
    assert voice.over_padding_only(where, 2.0, 3.0) and voice.over_padding_only(where, 0.0, 1.0)
    assert not voice.over_padding_only(where, 1.9, 3.0)  # overlaps the voiced chunk
    assert not voice.over_padding_only(where, 4.0, 6.5)  # runs past the heard audio
    assert not voice.over_padding_only(where, 6.0, 8.0)  # wholly past it: drifted times
    assert voice.outside([], 0.0, 1.0) and not voice.inside([], 0.0, 1.0)


@pytest.mark.model  # the VAD over real recordings: seconds of CPU, not the fast tier
def test_the_padding_guard_in_the_engine_s_screen(speech: Speech) -> None:
    """engine.screener: text over the music of the padding alone is dropped as unvoiced; text
    over the found speech, or timed past the heard audio, is not asked about."""
    from stt_common.messages import RemovalReason
    from stt_transcriber.engine import screener
    from stt_transcriber.language import Language

    said = decode(speech.en_wav, 60)
    audio = np.concatenate([said, sounds.music(20.0)])
    where = voice.speech(audio, 0.35, 3000, 400)
    end = where.found[-1]["end"] / SAMPLE_RATE
    assert where.heard == [{"start": 0, "end": where.found[-1]["end"] + 3 * SAMPLE_RATE}]
    screen = screener(audio, 0.0, Language("en", decode="en"), where)
    over_music = screen(end + 0.5, end + 2.5, "Potompangceğiz", 0.1, 0.0)
    assert over_music.text is None
    assert [r.reason for r in over_music.removed] == [RemovalReason.UNVOICED]
    assert screen(end - 2.0, end + 1.0, "green hills", 0.1, 0.0).text == "green hills"
    assert screen(end + 3.5, end + 5.0, "green hills", 0.1, 0.0).text == "green hills"
    # on the file's clock: the same audio 10 s into the file
    later = screener(audio, 10.0, Language("en", decode="en"), where)
    assert later(10 + end + 0.5, 10 + end + 2.5, "Potompangceğiz", 0.1, 0.0).text is None


@pytest.mark.model  # the VAD over real recordings: seconds of CPU, not the fast tier
def test_the_padding_evidence_tells_missed_speech_from_music(speech: Speech) -> None:
    """The padding guard's evidence (quality.py): the last 3 s of the alsa-utils recording under
    music at 0 dB, which the VAD at 0.35 misses, read as voiced at the lower threshold; the
    ends of a 20 s music intro and the start of a music outro, which the model hears as padding,
    do not."""
    from stt_transcriber import quality

    def evidence(audio: sounds.Audio, start: float, end: float) -> float:
        return voice.voiced_share(audio, start, end, quality.PADDING_THRESHOLD)

    rec = sounds.alsa_speech()
    said = sounds.pad(rec.audio, 1.0, 1.0)
    loud = sounds.mix(said, sounds.music(said.size / SAMPLE_RATE), 0)
    missed = voice.found_chunks(loud, 0.35)[-1]["end"] / SAMPLE_RATE
    assert missed < 13.5  # the recording's speech runs to ~16 s
    assert evidence(loud, 13.0, 16.0) >= quality.PADDING_VOICED_EVIDENCE
    en = decode(speech.en_wav, 60)
    intro = np.concatenate([sounds.music(20.0), en])
    outro = np.concatenate([en, sounds.music(20.0)])
    end = en.size / SAMPLE_RATE
    assert evidence(intro, 17.0, 20.0) < quality.PADDING_VOICED_EVIDENCE
    assert evidence(outro, end, end + 3.0) < quality.PADDING_VOICED_EVIDENCE
