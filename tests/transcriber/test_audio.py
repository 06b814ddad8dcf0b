from __future__ import annotations

import random
from pathlib import Path

import av
import pytest

from stt_transcriber.audio import clock, probe
from stt_transcriber.errors import JobError
from tests.transcriber.conftest import Speech


@pytest.mark.parametrize("kind", ["en_wav", "en_mp3", "en_ogg", "vi_wav"])
def test_probe_reads_the_duration(speech: Speech, kind: str) -> None:
    path: Path = getattr(speech, kind)
    duration = probe(path, max_seconds=3600)
    expected = 9.7 if kind.startswith("en") else 5.6
    assert duration == pytest.approx(expected, abs=0.3)


def test_random_bytes_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(random.Random(1234).randbytes(64 * 1024))  # seeded: never a valid file
    with pytest.raises(JobError) as caught:
        probe(path, 3600)
    err = caught.value
    assert (err.error_type, err.transient) == ("invalid_media", False)
    assert str(err).startswith("Invalid format: the file is not audio or video (")
    assert str(tmp_path) not in str(err), "the local path is not leaked to the client"


def test_video_without_audio_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 64, 48
        for _ in range(5):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(JobError) as caught:
        probe(path, 3600)
    assert str(caught.value) == "Invalid format: the file is not audio or video (no audio stream)"


def test_text_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text("<html><body>Access denied</body></html>\n" * 50)
    with pytest.raises(JobError) as caught:
        probe(path, 3600)
    assert caught.value.error_type == "invalid_media"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(JobError) as caught:
        probe(path, 3600)
    assert (str(caught.value), caught.value.error_type) == ("Media file is empty", "empty_media")


def test_too_long(speech: Speech) -> None:
    with pytest.raises(JobError) as caught:
        probe(speech.en_wav, max_seconds=5)
    err = caught.value
    assert str(err) == ("Audio is 0:00:10 long; the limit is 0:00:05 (STT_FETCH_MAX_AUDIO_SECONDS)")
    assert (err.error_type, err.transient) == ("too_long", False)


def test_clock() -> None:
    assert clock(3 * 3600 + 5 * 60) == "3:05:00"
    assert clock(7200) == "2:00:00"
    assert clock(59.9) == "0:00:59"
