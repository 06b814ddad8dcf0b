"""Real speech for tests: espeak-ng voices, compressed with PyAV's own encoders, and WER."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import jiwer

# About 9 s at 150 words per minute.
ENGLISH = (
    "the quick brown fox jumps over the lazy dog while the old farmer watches "
    "from the wooden gate and the sun slowly sets behind the distant green hills"
)
# "Today the weather is nice, we walk in the park and drink coffee with friends."
VIETNAMESE = "hôm nay trời rất đẹp, chúng tôi đi dạo trong công viên và uống cà phê với bạn bè"


def make_speech(text: str, voice: str, path: Path) -> Path:
    """Speak `text` with espeak-ng `voice` (such as "en-us", "vi") into the WAV file `path`."""
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def _transcode(src: Path, dst: Path, codecs: tuple[str, ...], rate: int) -> Path:
    codec = next((c for c in codecs if _has_encoder(c)), None)
    if codec is None:
        raise RuntimeError(f"PyAV has none of the encoders {codecs}")
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        # PyAV resamples and re-frames to the encoder's sample format and frame size itself.
        for frame in inp.decode(audio=0):
            frame.pts = None
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dst


def to_mp3(wav: Path, mp3: Path) -> Path:
    return _transcode(wav, mp3, ("libmp3lame", "mp3"), rate=22050)


def to_ogg(wav: Path, ogg: Path) -> Path:
    """Opus in Ogg where available (it only takes 48 kHz and a few lower rates), else Vorbis."""
    return _transcode(wav, ogg, ("libopus", "opus", "libvorbis", "vorbis"), rate=48000)


_PUNCTUATION = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercase, punctuation removed (diacritics kept), single spaces."""
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference`, after `normalise` of both."""
    return float(jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>"))
