"""Long English speech for the benchmarks: espeak-ng paragraphs of varied text, concatenated.

Each file is made once into the cache (`<cache>/bench/speech-<seconds>s-seed<N>-<version>.wav`,
with the text that was spoken beside it as `.txt`) and reused; the same seed always gives the
same words.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

_SUBJECTS = [
    "the old farmer", "a young engineer", "my neighbour", "the river pilot", "our teacher",
    "the night nurse", "a tired student", "the baker", "her grandmother", "the city council",
    "a small child", "the mountain guide", "the radio host", "a quiet librarian", "the captain",
    "the train driver", "his sister", "the gardener", "a famous painter", "the postman",
]
_VERBS = [
    "carried", "repaired", "painted", "counted", "described", "discovered", "ordered",
    "borrowed", "cleaned", "measured", "sold", "found", "explained", "opened", "collected",
    "watched", "followed", "planted", "recorded", "delivered",
]
_OBJECTS = [
    "a wooden boat", "seven green apples", "the broken window", "a heavy suitcase",
    "the morning newspaper", "twelve glass bottles", "a red bicycle", "the kitchen table",
    "an old map of the coast", "three silver spoons", "the village clock", "a box of letters",
    "the garden fence", "a basket of bread", "the yellow umbrella", "a pair of boots",
    "the long bridge", "a bag of coffee", "the school piano", "a stack of books",
]
_PLACES = [
    "near the harbour", "before sunrise", "in the crowded market", "after the storm",
    "behind the church", "during the long winter", "at the train station", "on a cold evening",
    "beside the lake", "in the middle of the forest", "under the bright lights",
    "at the end of the summer", "in the busy hospital", "on the top floor", "across the valley",
]
_TAILS = [
    "and nobody said a word", "while the rain kept falling", "because the shop was closed",
    "so the whole street could hear it", "and then everyone went home",
    "although it was far too late", "before the bus arrived", "and the dogs started barking",
    "while the music played softly", "as the wind grew stronger",
]
WORDS_PER_MINUTE = 160
GAP_SECONDS = 0.35  # the least pause between paragraphs (or sentences)
PARAGRAPH_SENTENCES = 6
VERSION = "v2"  # in the file names: v1 ended in up to a paragraph of silence


@dataclass(frozen=True)
class Speech:
    path: Path
    text: str  # the words spoken, in order
    seconds: float


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    text += f" {rng.choice(_PLACES)}"
    if rng.random() < 0.6:
        text += f" {rng.choice(_TAILS)}"
    return text[0].upper() + text[1:] + "."


def _speak(text: str, path: Path) -> None:
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", str(WORDS_PER_MINUTE), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=120,
    )


def make_speech(seconds: float, cache: Path, seed: int = 7) -> Speech:
    """A WAV file of exactly `seconds`, speech from start to end.

    Paragraphs while they fit, then single sentences; what is left over (less than a sentence)
    is shared out among the pauses between them. The file neither starts nor ends with a run of
    digital silence, which the worker leaves out and bare faster-whisper would decode.
    """
    folder = cache / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"speech-{int(seconds)}s-seed{seed}-{VERSION}"
    wav_path, txt_path = folder / f"{name}.wav", folder / f"{name}.txt"
    if wav_path.exists() and txt_path.exists():
        return Speech(wav_path, txt_path.read_text(), seconds)
    rng = random.Random(seed)
    spoken: list[str] = []
    pieces: list[bytes] = []
    params = None
    per_paragraph = PARAGRAPH_SENTENCES
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            text = " ".join(sentence(rng) for _ in range(per_paragraph))
            piece = Path(tmp) / "p.wav"
            _speak(text, piece)
            with wave.open(str(piece), "rb") as w:
                params = params or w.getparams()
                data = w.readframes(w.getnframes())
            rate = params.framerate
            gaps = len(pieces) * int(GAP_SECONDS * rate) * 2
            if (sum(map(len, pieces)) + gaps + len(data)) / 2 / rate > seconds:
                if per_paragraph == 1:
                    break
                per_paragraph = 1  # the rest in sentences, so little is left to fill
                continue
            pieces.append(data)
            spoken.append(text)
    if params is None or not pieces:
        raise ValueError(f"{seconds} s is shorter than one spoken sentence")
    frames = _joined(pieces, int(seconds * params.framerate))
    partial = wav_path.with_suffix(".wav.part")
    with wave.open(str(partial), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    partial.replace(wav_path)
    text = " ".join(spoken)
    txt_path.write_text(text)
    return Speech(wav_path, text, seconds)


def _joined(pieces: list[bytes], total_frames: int) -> bytes:
    """`pieces` (16-bit mono) joined by pauses that share out what `total_frames` leaves over."""
    left = total_frames - sum(len(p) for p in pieces) // 2
    if len(pieces) == 1:  # no pause to share it out: half before, half after
        before = left // 2
        return b"\0\0" * before + pieces[0] + b"\0\0" * (left - before)
    gaps = len(pieces) - 1
    out = [pieces[0]]
    for k, piece in enumerate(pieces[1:], start=1):
        out += [b"\0\0" * (left * k // gaps - left * (k - 1) // gaps), piece]
    return b"".join(out)


def short_clip(cache: Path) -> Speech:
    """About 8 s of speech, for the scale-out scenario (many short jobs)."""
    return make_speech(8, cache, seed=11)
