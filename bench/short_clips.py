"""The clips of the `short` scenario: speech between 10 and 60 s, the length of a social-media post.

Even-numbered clips hold real recorded speech: the alsa-utils channel names and the CMU ARCTIC
utterance (`stt_testing.sounds`) in a seeded order, each after an espeak-ng sentence of varied
text (real recordings alone are nine short phrases, and a transcript that repeats them compresses
so well that Whisper's compression-ratio check falls back to sampling: a random text, run to
run); odd-numbered ones are espeak-ng paragraphs (`bench.media.make_speech`). Each clip is made
once into the cache, deterministic in its index, with the words spoken beside it (`.txt`).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np

from bench.media import Speech, _joined, _speak, make_speech, sentence
from stt_testing import sounds
from stt_transcriber.decode import decode

MIN_SECONDS = 10
MAX_SECONDS = 60
VERSION = "v2"  # v1: real utterances alone (a repetitive transcript)
GOLDEN = 0.6180339887  # spreads the lengths evenly over the range, whatever the count


def lengths(count: int) -> list[int]:
    """`count` whole-second lengths spread over [MIN_SECONDS, MAX_SECONDS], in submit order."""
    span = MAX_SECONDS - MIN_SECONDS
    return [MIN_SECONDS + round(span * ((i * GOLDEN) % 1.0)) for i in range(count)]


def _utterances(cache: Path) -> list[sounds.Recording]:
    """Each real recording on its own: one alsa channel name per file, and the ARCTIC sentence."""
    alsa = [
        sounds.Recording(name, decode(sounds.ALSA_DIR / f"{name}.wav", 60), text)
        for name, text in sounds.ALSA_WORDS.items()
    ]
    return [*alsa, sounds.arctic_speech(cache)]


def real_clip(seconds: int, seed: int, cache: Path, pool: list[sounds.Recording]) -> Speech:
    """An espeak-ng sentence, then a real utterance, in turn, as many as fit in `seconds`, the
    time left over shared out among the pauses between them."""
    folder = cache / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"short-mixed-{seconds}s-seed{seed}-{VERSION}"
    wav, txt = folder / f"{name}.wav", folder / f"{name}.txt"
    if wav.exists() and txt.exists():
        return Speech(wav, txt.read_text(), float(seconds))
    rng = random.Random(seed)
    pieces: list[bytes] = []
    words: list[str] = []
    used = 0
    gap = int(0.4 * sounds.RATE)  # the least pause between two utterances
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            if len(pieces) % 2 == 0:
                text = sentence(rng)
                _speak(text, Path(tmp) / "s.wav")
                audio, said = decode(Path(tmp) / "s.wav", 60), text
            else:
                utterance = rng.choice(pool)
                audio, said = utterance.audio, utterance.text
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
            if used + (gap if pieces else 0) + pcm.size > seconds * sounds.RATE:
                break
            used += (gap if pieces else 0) + pcm.size
            pieces.append(pcm.tobytes())
            words.append(said)
    frames = np.frombuffer(_joined(pieces, seconds * sounds.RATE), "<i2")
    part = wav.with_suffix(".part.wav")
    sounds.write_wav(frames.astype(np.float32) / 32767, part)
    part.replace(wav)
    text = " ".join(words)
    txt.write_text(text)
    return Speech(wav, text, float(seconds))


def make_clips(count: int, cache: Path) -> list[tuple[str, Speech]]:
    """(kind, clip) for each job: kind is "real+espeak" or "espeak"."""
    pool = _utterances(cache)
    out: list[tuple[str, Speech]] = []
    for i, seconds in enumerate(lengths(count)):
        if i % 2 == 0:
            out.append(("real+espeak", real_clip(seconds, 500 + i, cache, pool)))
        else:
            out.append(("espeak", make_speech(seconds, cache, seed=500 + i)))
    return out
