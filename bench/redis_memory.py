"""`python -m bench.redis_memory`: Redis memory per finished job, by transcript length.

Writes COMPLETED job records through the real write path (`JobStore.apply_many`, the projector's
Lua script, TTL set) into a fresh `redis-server` of its own (loopback, a free port, no
persistence), and reports `used_memory` growth per job: what sizing Redis for
`submits/s × REDIS_JOB_TTL` jobs needs. Transcripts are synthetic at the density of speech
(CHARS_PER_SECOND characters of text per second of audio, one segment per SEGMENT_SECONDS), since
only their size matters to Redis. Not part of `make bench`'s scenarios (it needs no model and
runs in seconds); README's "Sizing" quotes it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import string
import subprocess
import tempfile
import time
from datetime import UTC, datetime

from redis.asyncio import Redis

from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, JobStatus, Segment

CHARS_PER_SECOND = 15  # ~2.5 words of ~6 characters (with the space) per second of speech
SEGMENT_SECONDS = 5.0
DURATIONS = (0, 10, 60, 600, 3600)  # seconds of audio; 0 = a FAILED job, no transcript
JOBS = 2000
TTL = 3600


def _text(chars: int) -> str:
    words = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append("".join(random.choices(string.ascii_lowercase, k=random.randint(2, 9))))
    return " ".join(words)[:chars]


def record(request_id: str, seconds: int) -> JobRecord:
    now = datetime.now(UTC)
    common = {
        "request_id": request_id,
        "media_url": f"minio://stt-media/uploads/{request_id}/talk.mp3",
        "submitted_at": now,
        "updated_at": now,
        "worker": "host-1234",
        "attempt": 1,
    }
    if seconds == 0:
        return JobRecord(
            status=JobStatus.FAILED,
            stage="done",
            error="Failed to download audio file",
            error_type="download",
            **common,  # type: ignore[arg-type]
        )
    segments = []
    start = 0.0
    while start < seconds:
        end = min(seconds, start + SEGMENT_SECONDS)
        segments.append(
            Segment(start=start, end=end, text=_text(int((end - start) * CHARS_PER_SECOND)))
        )
        start = end
    return JobRecord(
        status=JobStatus.COMPLETED,
        stage="done",
        progress=1.0,
        transcription=" ".join(s.text for s in segments),
        duration=float(seconds),
        confidence=0.91,
        processing_time=round(seconds * 0.07, 3),
        language="en",
        segments=segments,
        **common,  # type: ignore[arg-type]
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def measure(redis: Redis, seconds: int, count: int) -> tuple[int, int]:
    """(bytes of Redis memory per job, bytes of the stored JSON) for `count` such jobs."""
    await redis.flushall()
    store = JobStore(redis, TTL)
    before = int((await redis.info("memory"))["used_memory"])
    records = [record(f"mem-{seconds}-{i:06d}", seconds) for i in range(count)]
    for start in range(0, count, 200):
        await store.apply_many(records[start : start + 200], time.time())
    after = int((await redis.info("memory"))["used_memory"])
    stored = len(records[0].model_dump_json(exclude_none=True))
    return round((after - before) / count), stored


async def run() -> list[tuple[int, int, int]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found (make install)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="stt-redis-mem-") as folder:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        redis = Redis(host="127.0.0.1", port=port)
        try:
            for _ in range(100):
                try:
                    await redis.ping()
                    break
                except Exception:
                    await asyncio.sleep(0.05)
            rows = []
            for seconds in DURATIONS:
                count = JOBS if seconds < 600 else JOBS // 10
                per_job, stored = await measure(redis, seconds, count)
                rows.append((seconds, stored, per_job))
            return rows
        finally:
            await redis.aclose()
            server.terminate()
            server.wait(10)


def main() -> None:
    rows = asyncio.run(run())
    print("| audio | stored JSON | Redis memory per job |")
    print("|---|---|---|")
    for seconds, stored, per_job in rows:
        what = "FAILED job" if seconds == 0 else f"{seconds} s"
        print(f"| {what} | {stored} B | {per_job} B |")


if __name__ == "__main__":
    main()
