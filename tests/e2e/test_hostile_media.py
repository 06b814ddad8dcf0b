"""Hostile media through the real stack: each job ends FAILED with a clear reason, the worker
goes on to the next job, and its memory comes back to where it was."""

from __future__ import annotations

import io
import random
import struct
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from stt_testing import processes
from tests.e2e.conftest import Stack
from tests.e2e.seed_client import poll

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
RSS_GROWTH_LIMIT_MB = 150


def _truncated(mp3: bytes) -> bytes:
    return mp3[: len(mp3) * 3 // 10]  # the Xing/Info header still declares the full length


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", bytes(64 << 20))  # 64 MiB of zeros in ~64 KiB
    return out.getvalue()


def _huge_declared_duration(mp3: bytes) -> bytes:
    """The MP3 with its Xing/Info frame count raised to 10 million frames (~72 hours)."""
    at = max(mp3.find(b"Xing"), mp3.find(b"Info"))
    assert at > 0, "the encoder wrote no Xing/Info header"
    flags = struct.unpack(">I", mp3[at + 4 : at + 8])[0]
    assert flags & 1, "the header carries no frame count"
    return mp3[: at + 8] + struct.pack(">I", 10_000_000) + mp3[at + 12 :]


# file name -> (contents from the English MP3, error_type, words the error must contain)
HOSTILE = {
    "truncated.mp3": (_truncated, "invalid_media", "truncated"),
    "bomb.mp3": (lambda _: _zip_bomb(), "invalid_media", "not audio or video"),
    "huge-duration.mp3": (_huge_declared_duration, "too_long", "STT_FETCH_MAX_AUDIO_SECONDS"),
    "empty.mp3": (lambda _: b"", "empty_media", "empty"),
    "random.mp3": (
        lambda _: random.Random(7).randbytes(200_000),
        "invalid_media",
        "Invalid format",
    ),
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def submit(stack: Stack, url: str, language: str = "en") -> str:
    rid = "hostile-" + uuid.uuid4().hex[:12]
    resp = httpx.post(
        f"{stack.api.url}/api/v1/transcribe",
        json={"request_id": rid, "media_url": url, "language": language},
        headers={"X-API-Key": processes.API_KEY},
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    return rid


def result(stack: Stack, rid: str) -> dict[str, object]:
    return poll(stack.api.url, rid, processes.API_KEY, max_retries=300, wait_time=0.3)


def test_hostile_media_fails_clearly_and_the_worker_recovers(stack: Stack) -> None:
    root = stack.clips["english"].parent
    mp3 = stack.clips["english_mp3"].read_bytes()
    for name, (make, _, _) in HOSTILE.items():
        (root / name).write_bytes(make(mp3))
    pid = stack.transcribers[0].proc.pid  # type: ignore[union-attr]

    warm = result(stack, submit(stack, f"{stack.media.url}/english.wav"))
    assert warm["status"] == "COMPLETED", warm  # the model's buffers are allocated now
    before = rss_mb(pid)

    jobs = {name: submit(stack, f"{stack.media.url}/{name}") for name in HOSTILE}
    good = submit(stack, f"{stack.media.url}/english.mp3")
    for name, rid in jobs.items():
        body = result(stack, rid)
        _, error_type, words = HOSTILE[name]
        assert body["status"] == "FAILED", (name, body)
        assert body["message"] == "Transcription failed"
        assert body["error_type"] == error_type, (name, body)
        assert words in str(body["error"]), (name, body)
    done = result(stack, good)
    assert done["status"] == "COMPLETED", done
    assert str(done["transcription"]).strip()

    after = rss_mb(pid)
    print(f"transcriber RSS: {before:.0f} MB before, {after:.0f} MB after the hostile jobs")
    assert stack.transcribers[0].proc.poll() is None  # type: ignore[union-attr]
    assert after - before < RSS_GROWTH_LIMIT_MB, (before, after)
