"""The bounded decoder: the same samples as faster-whisper's, but never more than the limit."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from stt_transcriber.audio import probe
from stt_transcriber.decode import decode
from stt_transcriber.engine import WhisperEngine
from stt_transcriber.errors import JobError
from tests.transcriber.conftest import Speech


def with_frame_count(mp3: Path, frames: int, dest: Path) -> Path:
    """`mp3` with its Xing/Info header claiming `frames` MP3 frames."""
    data = mp3.read_bytes()
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0
    dest.write_bytes(data[: at + 8] + struct.pack(">I", frames) + data[at + 12 :])
    return dest


def failure(path: Path, max_seconds: float) -> JobError:
    with pytest.raises(JobError) as caught:
        decode(path, max_seconds)
    return caught.value


@pytest.mark.parametrize("kind", ["en_wav", "en_mp3", "en_ogg"])
def test_same_samples_as_faster_whisper(speech: Speech, kind: str) -> None:
    path = getattr(speech, kind)
    ours = decode(path, 3600)
    theirs = decode_audio(str(path))
    assert ours.dtype == np.float32
    assert np.array_equal(ours, theirs)


def test_a_header_that_understates_the_length_is_caught_while_decoding(
    speech: Speech, tmp_path: Path
) -> None:
    liar = with_frame_count(speech.en_mp3, 20, tmp_path / "liar.mp3")  # claims ~0.5 s of 9.7 s
    assert probe(liar, max_seconds=3) < 1  # the header check lets it through ...
    err = failure(liar, max_seconds=3)  # ... the decoder stops at 3 s
    assert err.error_type == "too_long"
    assert "STT_FETCH_MAX_AUDIO_SECONDS" in err.message


def test_a_header_that_overstates_the_length_is_refused_before_decoding(
    speech: Speech, tmp_path: Path
) -> None:
    huge = with_frame_count(speech.en_mp3, 10_000_000, tmp_path / "huge.mp3")
    with pytest.raises(JobError) as caught:
        probe(huge, max_seconds=4 * 3600)
    assert caught.value.error_type == "too_long"


def test_truncated_file(speech: Speech, tmp_path: Path) -> None:
    data = speech.en_mp3.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 3])
    err = failure(cut, 3600)
    assert err.error_type == "invalid_media"
    assert "truncated" in err.message


def test_a_slightly_short_file_is_still_transcribed(speech: Speech, tmp_path: Path) -> None:
    data = speech.en_mp3.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) * 9 // 10])  # a lost tail is not worth failing the job
    assert decode(cut, 3600).size > 0


def test_nothing_decodable(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(random.Random(7).randbytes(200_000))
    assert failure(noise, 3600).error_type == "invalid_media"


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.touch()
    assert failure(empty, 3600).error_type == "empty_media"


def test_engine_applies_the_bound(
    whisper_engine: WhisperEngine, speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(whisper_engine, "max_audio_seconds", 3.0)
    with pytest.raises(JobError) as caught:
        whisper_engine.transcribe(speech.en_wav, "en")
    assert caught.value.error_type == "too_long"


# ---- issue 12: demuxer/protocol allow-list, sample-rate floor -------------------------------


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.parametrize("opener", ["probe", "decode"])
def test_a_self_including_ffconcat_file_is_refused_without_opening_anything(
    tmp_path: Path, opener: str
) -> None:
    # Named like audio, as a client would send it; FFmpeg probes the bytes, not the name.
    playlist = tmp_path / "loop.mp3"
    playlist.write_text(f"ffconcat version 1.0\nfile {playlist}\nfile {playlist}\n")
    before = open_fds()
    with pytest.raises(JobError) as caught:
        probe(playlist, 3600) if opener == "probe" else decode(playlist, 3600)
    assert caught.value.error_type == "invalid_media"
    assert "format this service reads" in str(caught.value)
    assert open_fds() <= before + 2  # unguarded, FFmpeg opened thousands (EMFILE)


@pytest.mark.parametrize("kind", ["en_wav", "en_mp3", "en_ogg"])
def test_the_allowed_formats_still_open(speech: Speech, kind: str) -> None:
    assert probe(getattr(speech, kind), 3600) > 1


def wav_at(rate: int, seconds: float, dest: Path) -> Path:
    """A mono 16-bit WAV of a 440 Hz-ish tone (or what the rate allows) at `rate` Hz."""
    count = int(rate * seconds)
    tone = (np.sin(np.arange(count) * 0.3) * 8000).astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(tone), b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data",
        len(tone),
    )  # fmt: skip
    dest.write_bytes(header + tone)
    return dest


@pytest.mark.parametrize("rate", [1, 1000, 7999])
def test_sample_rates_below_8_khz_are_refused(tmp_path: Path, rate: int) -> None:
    # 28 KB at 1 Hz would be 3.9 hours once resampled to 16 kHz.
    path = wav_at(rate, 14_000 / rate, tmp_path / "low.wav")
    for check in (lambda: probe(path, 4 * 3600), lambda: decode(path, 4 * 3600)):
        with pytest.raises(JobError) as caught:
            check()
        assert caught.value.error_type == "invalid_media"
        assert f"sample rate is {rate} Hz" in str(caught.value) and "8000" in str(caught.value)


def test_8_khz_is_accepted(tmp_path: Path) -> None:
    path = wav_at(8000, 2.0, tmp_path / "phone.wav")
    assert probe(path, 3600) == pytest.approx(2.0)
    assert decode(path, 3600).size == 32_000
