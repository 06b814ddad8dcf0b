"""The clips of the `short` scenario: speech between 10 and 60 s, the length of a social-media post.

Even-numbered clips are real recorded speech: the alsa-utils channel names and the CMU ARCTIC
utterance (`stt_testing.sounds`), shuffled and joined by pauses; odd-numbered ones are espeak-ng
paragraphs (`bench.media.make_speech`). Each clip is made once into the cache, deterministic in
its index, with the words spoken beside it (`.txt`).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from bench.media import Speech, _joined, make_speech
from stt_testing import sounds
from stt_transcriber.decode import decode

MIN_SECONDS = 10
MAX_SECONDS = 60
VERSION = "v1"
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
    """Real utterances in a seeded random order, as many as fit in `seconds`, the time left over
    shared out among the pauses between them."""
    folder = cache / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"short-real-{seconds}s-seed{seed}-{VERSION}"
    wav, txt = folder / f"{name}.wav", folder / f"{name}.txt"
    if wav.exists() and txt.exists():
        return Speech(wav, txt.read_text(), float(seconds))
    rng = random.Random(seed)
    pieces: list[bytes] = []
    words: list[str] = []
    used = 0
    gap = int(0.4 * sounds.RATE)  # the least pause between two utterances
    while True:
        utterance = rng.choice(pool)
        pcm = (np.clip(utterance.audio, -1.0, 1.0) * 32767).astype("<i2")
        if used + (gap if pieces else 0) + pcm.size > seconds * sounds.RATE:
            break
        used += (gap if pieces else 0) + pcm.size
        pieces.append(pcm.tobytes())
        words.append(utterance.text)
    frames = np.frombuffer(_joined(pieces, seconds * sounds.RATE), "<i2")
    part = wav.with_suffix(".part.wav")
    sounds.write_wav(frames.astype(np.float32) / 32767, part)
    part.replace(wav)
    text = " ".join(words)
    txt.write_text(text)
    return Speech(wav, text, float(seconds))


def make_clips(count: int, cache: Path) -> list[tuple[str, Speech]]:
    """(kind, clip) for each job: kind is "real" or "espeak"."""
    pool = _utterances(cache)
    out: list[tuple[str, Speech]] = []
    for i, seconds in enumerate(lengths(count)):
        if i % 2 == 0:
            out.append(("real", real_clip(seconds, 500 + i, cache, pool)))
        else:
            out.append(("espeak", make_speech(seconds, cache, seed=500 + i)))
    return out
