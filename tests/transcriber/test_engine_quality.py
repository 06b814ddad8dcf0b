"""The real engine on audio without speech, on real recorded speech under music and noise, and
on speech in another language than the one asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stt_common.messages import RemovalReason
from stt_testing import sounds, speech
from stt_testing.infra import cache_dir
from stt_testing.speech import ENGLISH, normalise, wer
from stt_transcriber.decode import decode
from stt_transcriber.engine import WhisperEngine
from tests.transcriber.conftest import Speech

CLIP_SECONDS = 8.0
# Measured (base, int8, beam 5): alsa 0.0 clean, arctic 0.1 ("separative"); under music or pink
# noise at 10 dB both stay within 0.2.
REAL_MAX_WER = 0.3


def wav(tmp_path: Path, name: str, audio: sounds.Audio) -> Path:
    return sounds.write_wav(audio, tmp_path / f"{name}.wav")


def variant(engine: WhisperEngine, model_dir: Path, **settings: object) -> WhisperEngine:
    return WhisperEngine(str(model_dir), engine.settings.model_copy(update=settings))


@pytest.mark.parametrize("kind", list(sounds.NON_SPEECH))
def test_non_speech_gives_an_empty_transcript(
    whisper_engine: WhisperEngine, tmp_path: Path, kind: str
) -> None:
    path = wav(tmp_path, kind, sounds.NON_SPEECH[kind](CLIP_SECONDS))
    for language in ("vi", "en", None):
        result = whisper_engine.transcribe(path, language)
        assert (result.text, result.segments) == ("", []), (language, result.text)
        assert result.confidence == 0.0
        if kind != "babble":  # overlapped voices are voiced audio, just not intelligible
            assert result.speech_seconds < 0.5, (language, result.speech_seconds)
            assert result.detected_language is None


def test_the_old_defaults_invent_text_on_music(
    whisper_engine: WhisperEngine, whisper_model_dir: Path, tmp_path: Path
) -> None:
    """What the defaults above prevent: without VAD and guards, music turns into words."""
    old = variant(whisper_engine, whisper_model_dir, vad_filter=False, hallucination_filter=False)
    path = wav(tmp_path, "music", sounds.music(CLIP_SECONDS))
    assert old.transcribe(path, "vi").text


def test_the_guards_alone_catch_what_the_model_invents(
    whisper_engine: WhisperEngine, whisper_model_dir: Path, tmp_path: Path
) -> None:
    """With the VAD off, the model hears music, clicks, a chord and silence and invents text
    (a loop, known phrases, "..."); the guards remove all of it and say why."""
    guarded = variant(whisper_engine, whisper_model_dir, vad_filter=False)
    reasons: set[RemovalReason] = set()
    for kind, language in (("music", "vi"), ("clicks", "vi"), ("chord_pad", "en"),
                           ("silence", "en"), ("silence", None)):
        path = wav(tmp_path, f"{kind}-{language}", sounds.NON_SPEECH[kind](CLIP_SECONDS))
        result = guarded.transcribe(path, language)
        assert result.text == "", (kind, language, result.text)
        reasons |= {r.reason for r in result.removed or []}
    assert RemovalReason.REPETITION in reasons
    assert RemovalReason.KNOWN_HALLUCINATION in reasons


@pytest.fixture(scope="module")
def real() -> list[sounds.Recording]:
    return sounds.real_speech(cache_dir())


@pytest.mark.parametrize("condition", ["clean", "music_10db", "noise_10db"])
def test_real_speech_survives_music_and_noise(
    whisper_engine: WhisperEngine, real: list[sounds.Recording], tmp_path: Path, condition: str
) -> None:
    for rec in real:
        audio = sounds.pad(rec.audio, 1.0, 1.0)
        if condition == "music_10db":
            audio = sounds.mix(audio, sounds.music(audio.size / sounds.RATE), 10)
        elif condition == "noise_10db":
            audio = sounds.mix(audio, sounds.pink(audio.size / sounds.RATE), 10)
        result = whisper_engine.transcribe(wav(tmp_path, rec.name, audio), "en")
        assert wer(rec.text, result.text) <= REAL_MAX_WER, (rec.name, result.text)
        assert result.speech_seconds > 0.6 * rec.audio.size / sounds.RATE
        for seg in result.segments:
            assert seg.no_speech_prob is not None and 0 <= seg.no_speech_prob <= 1
            assert seg.avg_logprob is not None and seg.avg_logprob <= 0
            assert seg.compression_ratio is not None and seg.compression_ratio > 0


def test_a_listed_phrase_in_speech_is_kept(
    whisper_engine: WhisperEngine, tmp_path: Path
) -> None:
    said = "thank you for watching and please subscribe to my channel"
    path = speech.make_speech(said, "en-us", tmp_path / "outro.wav")
    result = whisper_engine.transcribe(path, "en")
    assert wer(said, result.text) <= 0.2, result.text
    assert not result.removed


def test_a_language_mismatch_is_flagged(whisper_engine: WhisperEngine, speech: Speech) -> None:
    result = whisper_engine.transcribe(speech.en_wav, "vi")
    assert result.language == "vi"  # the requested language stays the contract ...
    assert result.detected_language == "en"  # ... and the job says what it heard
    assert result.language_probability is not None and result.language_probability > 0.8
    assert result.language_mismatch is True
    same = whisper_engine.transcribe(speech.vi_wav, "vi")
    assert (same.detected_language, same.language_mismatch) == ("vi", False)


def test_detect_mode_transcribes_in_the_detected_language(
    whisper_engine: WhisperEngine, whisper_model_dir: Path, speech: Speech
) -> None:
    detecting = variant(whisper_engine, whisper_model_dir, language_mismatch="detect")
    result = detecting.transcribe(speech.en_wav, "vi")
    assert (result.language, result.detected_language) == ("en", "en")
    assert result.language_mismatch is True
    assert wer(ENGLISH, result.text) <= 0.3, result.text


def test_detection_is_over_the_voiced_audio(
    whisper_engine: WhisperEngine, speech: Speech, tmp_path: Path
) -> None:
    """20 s of music before English speech: detection is on the speech, not the first 30 s."""
    audio = np.concatenate([sounds.music(20.0), decode(speech.en_wav, 60)])
    result = whisper_engine.transcribe(wav(tmp_path, "intro", audio), "vi")
    assert result.detected_language == "en", result
    assert result.language_mismatch is True
    # Nothing over the music: the first segment is the speech, starting at most the padding kept
    # before speech after a cut (STT_VAD_PAD_BEFORE_MS) before it (Whisper's own timestamps vary
    # by a few tenths). With the 3 s of STT_VAD_PAD_MS before it too, the model heard the end of
    # the music and wrote "Mbody's quick brown fox" from 17.1 s.
    settings = whisper_engine.settings
    before = min(settings.vad_pad_ms, settings.vad_pad_before_ms) / 1000
    first = result.segments[0]
    assert first.start >= 20 - before - 0.3, result.segments
    assert normalise(first.text).split()[:2] in (["the", "quick"], ["a", "quick"]), (
        result.segments
    )


def test_words_at_a_chunk_edge_under_loud_music_are_kept(
    whisper_engine: WhisperEngine, tmp_path: Path
) -> None:
    """The alsa-utils recording under music at 0 dB: the VAD (0.35) ends its chunk at 13 s and
    misses the last ~3 s of speech ("side left side right"). STT_VAD_PAD_MS (3 s after speech)
    lets the model hear them, and the padding guard keeps what it writes there (with 400 ms of
    padding the transcript ended "rear left side", with 1.5 s "side left")."""
    rec = sounds.alsa_speech()
    said = sounds.pad(rec.audio, 1.0, 1.0)
    loud = sounds.mix(said, sounds.music(said.size / sounds.RATE), 0)
    result = whisper_engine.transcribe(wav(tmp_path, "alsa-music-0db", loud), "en")
    assert normalise(result.text).endswith("side left side right"), result
    assert not [r for r in result.removed or [] if r.reason == RemovalReason.UNVOICED]


def count_encodes(engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the encoder passes of `engine`'s model (one per 30 s chunk decoded, plus any
    detection pass)."""
    calls: list[int] = []
    encode = engine.model.encode

    def counting(features: object) -> object:
        calls.append(1)
        return encode(features)

    monkeypatch.setattr(engine.model, "encode", counting)
    return calls


def test_detection_adds_no_encoder_pass(
    whisper_engine: WhisperEngine, speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a requested language the detection reuses decoding's own encoder output: a 10 s
    clip costs one encoder pass, as bare faster-whisper with that language does."""
    calls = count_encodes(whisper_engine, monkeypatch)
    result = whisper_engine.transcribe(speech.en_wav, "vi")
    assert result.detected_language == "en"
    assert len(calls) == 1


def test_detect_mode_costs_one_more_encoder_pass(
    whisper_engine: WhisperEngine,
    whisper_model_dir: Path,
    speech: Speech,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    detecting = variant(whisper_engine, whisper_model_dir, language_mismatch="detect")
    calls = count_encodes(detecting, monkeypatch)
    assert detecting.transcribe(speech.en_wav, "vi").language == "en"
    assert len(calls) == 2
