"""The broad real-speech set of the quality bench: several hundred reference words of recorded
human speech, several speakers, all from packages this repo installs or downloads itself.

* `asterisk`: 34 prompts of the Asterisk PBX's US English voice (Allison Smith, a woman; 8 kHz
  telephone recordings) from the Debian package `asterisk-core-sounds-en-wav` (DEBIAN_PACKAGES
  in the Makefile). The transcripts are the package's own (`core-sounds-en.txt` of
  `asterisk-core-sounds-en`), copied into `asterisk_prompts.json` for the prompts chosen: every
  second one, by name, of those with at least 6 words and no digits, number words, brackets or
  ellipses (Whisper writes numbers as digits, which WER would count as errors of both configs).
  They are joined into clips of about 20 s, 0.6 s apart.
* `librivox`: five utterances of a LibriVox reading of Sense and Sensibility (a man), with their
  transcripts, from the test data of the PyPI sdist `pocketsphinx==5.1.1`, pip-downloaded into
  the cache once and checked against its SHA-256.
* plus `sounds.real_speech`: the alsa-utils channel names (a woman) and CMU ARCTIC a0007.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from stt_testing import sounds
from stt_transcriber.decode import decode

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_PROMPTS = Path(__file__).with_name("asterisk_prompts.json")
CLIP_SECONDS = 20.0
GAP_SECONDS = 0.6

POCKETSPHINX_SDIST = "pocketsphinx==5.1.1"
POCKETSPHINX_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
LIBRIVOX_DIR = "pocketsphinx-5.1.1/test/data/librivox"
# test/data/librivox/transcription of the sdist; "mister" written as Whisper and the book write it.
LIBRIVOX = {
    "sense_and_sensibility_01_austen_64kb-0870": "and mr john dashwood had then leisure to "
    "consider how much there might be prudently in his power to do for them",
    "sense_and_sensibility_01_austen_64kb-0880": "he was not an ill disposed young man",
    "sense_and_sensibility_01_austen_64kb-0890": "unless to be rather cold hearted and rather "
    "selfish is to be ill disposed",
    "sense_and_sensibility_01_austen_64kb-0920": "had he married a more a amiable woman he might "
    "have been made still more respectable than he was",
    "sense_and_sensibility_01_austen_64kb-0930": "he might even have been made amiable himself",
}


def _joined(
    name: str, parts: list[tuple[sounds.Audio, str]], clip_seconds: float
) -> list[sounds.Recording]:
    """`parts` one after another with GAP_SECONDS between, cut into clips of about
    `clip_seconds` at part boundaries."""
    gap = np.zeros(int(GAP_SECONDS * sounds.RATE), np.float32)
    groups: list[list[tuple[sounds.Audio, str]]] = [[]]
    for part in parts:
        if sum(a.size + gap.size for a, _ in groups[-1]) >= clip_seconds * sounds.RATE:
            groups.append([])
        groups[-1].append(part)
    return [
        sounds.Recording(
            f"{name}{k}",
            np.concatenate([piece for a, _ in group for piece in (a, gap)]),
            " ".join(text for _, text in group),
        )
        for k, group in enumerate(groups)
        if group
    ]


def asterisk_speech(clip_seconds: float = CLIP_SECONDS) -> list[sounds.Recording]:
    """The chosen Asterisk prompts as clips of about `clip_seconds`."""
    prompts: dict[str, str] = json.loads(ASTERISK_PROMPTS.read_text())
    parts = [(decode(ASTERISK_DIR / f"{name}.wav", 60), text) for name, text in prompts.items()]
    return _joined("asterisk", parts, clip_seconds)


def _pocketsphinx_sdist(cache_dir: Path) -> Path:
    """The pocketsphinx sdist in the cache, downloaded with pip the first time and verified."""
    target = cache_dir / "speech" / "pocketsphinx-5.1.1.tar.gz"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        sdist_only = ["--no-binary", "pocketsphinx", POCKETSPHINX_SDIST, "-d", tmp]
        subprocess.run([*pip, *sdist_only], check=True, capture_output=True, timeout=600)
        sdist = next(Path(tmp).glob("pocketsphinx-*.tar.gz"))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != POCKETSPHINX_SHA256:
            raise RuntimeError(f"{sdist.name}: SHA-256 {digest}, expected {POCKETSPHINX_SHA256}")
        sdist.replace(target)
    return target


def librivox_speech(cache_dir: Path) -> sounds.Recording:
    """The five LibriVox utterances of the pocketsphinx sdist, as one clip."""
    folder = cache_dir / "speech" / "librivox"
    if not all((folder / f"{name}.wav").exists() for name in LIBRIVOX):
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(_pocketsphinx_sdist(cache_dir)) as tar:
            for name in LIBRIVOX:
                member = tar.extractfile(f"{LIBRIVOX_DIR}/{name}.wav")
                assert member is not None, f"{name}.wav missing from the pocketsphinx sdist"
                part = folder / f"{name}.part"
                part.write_bytes(member.read())
                part.replace(folder / f"{name}.wav")
    parts = [(decode(folder / f"{name}.wav", 60), text) for name, text in LIBRIVOX.items()]
    return _joined("librivox", parts, clip_seconds=3600.0)[0]


def speech_set(cache_dir: Path) -> list[sounds.Recording]:
    """All the real English speech: Asterisk clips, LibriVox, alsa-utils, CMU ARCTIC."""
    return [*asterisk_speech(), librivox_speech(cache_dir), *sounds.real_speech(cache_dir)]


def reference_words(recordings: list[sounds.Recording]) -> int:
    return sum(len(r.text.split()) for r in recordings)
