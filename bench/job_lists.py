"""`python -m bench.job_lists`: what the job lists cost (issue 16), against a `redis-server` of
its own (loopback, a free port, no persistence), like `bench.redis_memory`.

* Writing: the projector's write (`JobStore.apply_many`, batches of 200) per record, with the
  list indexes (as shipped) and without them (the ordering script alone, as before tenants),
  alternated over several rounds in one run, so the ratio is what to read on a shared machine.
* Memory: `used_memory` growth per job, with and without the indexes.
* Reading: one page of `GET /api/v1/transcribe` at the store (`JobStore.list_jobs`, 100 jobs a
  page, records parsed), walking every page of a tenant, with distinct submit times and with
  every job sharing one (the cursor's worst case), and a filter that matches one job in ten.
Not part of `make bench`'s scenarios (it needs no model and runs in about a minute).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from bench.redis_memory import _free_port, record
from stt_common.job_store import ApplyOutcome, JobStore, _ms, job_key
from stt_common.messages import JobRecord, JobStatus

JOBS = 10_000
BATCH = 200
ROUNDS = 5
PAGE = 100
TTL = 3600


class WithoutIndex(JobStore):
    """The write as it was before the job lists: the ordering script alone."""

    async def apply_many(self, records: Sequence[JobRecord], now: float) -> list[ApplyOutcome]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in records:
                args: list[str | int] = [
                    job.generation,
                    int(job.phase),
                    _ms(job.updated_at),
                    job.model_dump_json(exclude_none=True),
                    self.expire_at(job),
                    int(now),
                ]
                await self._apply(keys=[job_key(job.job_id)], args=args, client=pipe)
            results = await pipe.execute()
        return [ApplyOutcome(r.decode() if isinstance(r, bytes) else r) for r in results]


def jobs(tag: str, count: int, tied: bool) -> list[JobRecord]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    made = []
    for i in range(count):
        job = record(f"{tag}-{i:06d}", 10)
        at = start if tied else start + timedelta(milliseconds=i)
        status = JobStatus.FAILED if i % 10 == 0 else JobStatus.COMPLETED
        made.append(
            job.model_copy(
                update={"tenant": "bench", "submitted_at": at, "updated_at": at, "status": status}
            )
        )
    return made


async def write(store: JobStore, records: list[JobRecord]) -> float:
    """Seconds per record."""
    started = time.perf_counter()
    for first in range(0, len(records), BATCH):
        await store.apply_many(records[first : first + BATCH], time.time())
    return (time.perf_counter() - started) / len(records)


async def memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def walk(store: JobStore, status: JobStatus | None = None) -> tuple[int, float]:
    """(jobs listed, median seconds per page) over every page of the tenant."""
    cursor = None
    listed = 0
    times = []
    while True:
        started = time.perf_counter()
        page = await store.list_jobs(
            "bench",
            after=cursor,
            limit=PAGE,
            accept=None if status is None else (lambda r: r.status is status),
        )
        times.append(time.perf_counter() - started)
        listed += len(page.records)
        if page.next_cursor is None:
            return listed, statistics.median(times)
        cursor = page.next_cursor


async def run() -> dict[str, float]:
    import shutil
    import subprocess
    import tempfile

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found (make install)")
    port = _free_port()
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stt-redis-lists-") as folder:
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
            plain, indexed = WithoutIndex(redis, TTL), JobStore(redis, TTL)
            per_record: dict[str, list[float]] = {"without": [], "with": []}
            grew: dict[str, list[float]] = {"without": [], "with": []}
            for n in range(ROUNDS):
                for name, store in (("without", plain), ("with", indexed)):
                    await redis.flushall()
                    before = await memory(redis)
                    per_record[name].append(await write(store, jobs(f"w{n}", 2000, False)))
                    grew[name].append((await memory(redis) - before) / 2000)
            for name in ("without", "with"):
                found[f"write_us_{name}"] = statistics.median(per_record[name]) * 1e6
                found[f"memory_b_{name}"] = statistics.median(grew[name])
            for tied in (False, True):
                await redis.flushall()
                await write(indexed, jobs("r", JOBS, tied))
                listed, page = await walk(indexed)
                assert listed == JOBS, listed
                found[f"page_ms_{'tied' if tied else 'distinct'}"] = page * 1000
            listed, page = await walk(indexed, JobStatus.FAILED)
            assert listed == JOBS // 10, listed
            found["page_ms_filtered"] = page * 1000
            return found
        finally:
            await redis.aclose()
            server.terminate()
            server.wait(10)


def main() -> None:
    found = asyncio.run(run())
    ratio = found["write_us_with"] / found["write_us_without"]
    print("| measure | without the lists | with them |")
    print("|---|---|---|")
    print(
        f"| projector write per record (batches of {BATCH}) | {found['write_us_without']:.0f} µs "
        f"| {found['write_us_with']:.0f} µs (× {ratio:.2f}) |"
    )
    print(
        f"| Redis memory per job (10 s transcript) | {found['memory_b_without']:.0f} B "
        f"| {found['memory_b_with']:.0f} B |"
    )
    print(f"\nOne page of {PAGE} of {JOBS} jobs (median over every page):")
    print(f"- distinct submit times: {found['page_ms_distinct']:.1f} ms")
    print(f"- every job with the same submit time: {found['page_ms_tied']:.1f} ms")
    print(f"- status=FAILED (one job in ten): {found['page_ms_filtered']:.1f} ms")


if __name__ == "__main__":
    main()
