"""The broad real-speech set of the quality bench (stt_testing.recordings): there, checked, and
speech all through."""

from __future__ import annotations

from pathlib import Path

import pytest

from stt_testing import recordings, sounds
from stt_testing.infra import cache_dir
from stt_transcriber import voice


@pytest.mark.model  # building the set decodes every recording: ~10 s, too much for the fast tier
def test_the_set_has_several_hundred_words_of_several_speakers() -> None:
    clips = recordings.speech_set(cache_dir())
    assert recordings.reference_words(clips) >= 450
    sources = {clip.name.rstrip("0123456789") for clip in clips}
    assert sources == {"asterisk", "librivox", "alsa", "arctic"}
    for clip in clips:
        seconds = clip.audio.size / sounds.RATE
        assert 3 < seconds < 30, clip.name  # one Whisper chunk each


@pytest.mark.model  # the VAD over the whole set: ~10 s of CPU, too much for the fast tier
def test_the_set_is_speech_all_through() -> None:
    for clip in recordings.speech_set(cache_dir()):
        seconds = clip.audio.size / sounds.RATE
        voiced = voice.voiced_seconds(voice.voiced_chunks(clip.audio))
        assert voiced > 0.7 * seconds, (clip.name, voiced, seconds)


def test_a_tampered_sdist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip hands over an archive whose checksum is not the pinned one: nothing is cached."""

    def fake_pip(cmd: list[str], **_: object) -> None:
        Path(cmd[cmd.index("-d") + 1], "pocketsphinx-5.1.1.tar.gz").write_bytes(b"not it")

    monkeypatch.setattr(recordings.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="SHA-256"):
        recordings.librivox_speech(tmp_path)
    assert not (tmp_path / "speech" / "pocketsphinx-5.1.1.tar.gz").exists()
