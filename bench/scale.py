"""Scenario 3: scale-out. Jobs completed per minute with 1, 2 and 4 transcriber processes in one
consumer group, on short clips, with the real model and with the no-op engine (STT_ENGINE=fake),
which leaves only the path through the API, Kafka, the worker's download and probe, the
projector and Redis. Also: one job at a time on the fake engine (the per-job latency of that
path, stage by stage), and what each job leaves behind in Redis and Kafka.

Each worker count runs on fresh topics (12 partitions, the service default) with its own
API, projector and transcribers; the jobs are submitted through the API all at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import jobs
from bench.media import short_clip
from bench.stack import CPU_COUNT, Bench, CpuMeter, tree
from stt_testing import kafka_tools

WORKER_COUNTS = (1, 2, 4)
PARTITIONS = 12


def kafka_bytes(bench: Bench, prefix: str) -> int:
    """Bytes in the broker's log segments of the topics `<prefix>.jobs.*` (local launcher only)."""
    stack = bench.infra.stack
    if stack is None:
        return 0
    data = Path(stack.kafka.data)
    return sum(
        f.stat().st_size
        for d in data.glob(f"{prefix}.jobs.*")
        for f in d.glob("*.log")
    )


async def redis_used_memory(redis: Any) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def submit_all(api_url: str, ids: list[str], media_url: str) -> float:
    """Submits every job (16 at a time); returns when the first was sent."""
    started = time.time()
    queue = list(ids)

    async def one(http: httpx.AsyncClient) -> None:
        while queue:
            rid = queue.pop()
            await jobs.submit(http, rid, media_url)

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        await asyncio.gather(*(one(http) for _ in range(16)))
    return started


async def single_jobs(
    bench: Bench, api_url: str, tap: jobs.ResultsTap, redis: Any, media_url: str, count: int
) -> dict[str, Any]:
    """One job at a time on an idle system: the latency of the path, stage by stage."""
    runs: list[jobs.Timeline] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        for _ in range(count):
            rid = "one-" + uuid.uuid4().hex[:12]
            t0, t1, _first = await jobs.submit(http, rid, media_url)
            in_redis = await asyncio.wait_for(jobs.watch_redis(redis, rid), 60)
            await tap.wait_completed({rid}, 30)
            runs.append(jobs.timeline(tap, rid, t0, t1, in_redis, {}))
    stages = {
        name: round(jobs.median([r.stages()[name] for r in runs]) * 1000, 1)
        for name in runs[0].stages()
    }
    stages["transcribe_fake_engine"] = stages.pop("model")
    stages.pop("decode")
    return {
        "jobs": count,
        "end_to_end_ms": round(jobs.median([r.end_to_end() for r in runs]) * 1000, 1),
        "worker_processing_ms": round(jobs.median([r.processing_time for r in runs]) * 1000, 1),
        "stages_ms": stages,
    }


async def one_count(
    bench: Bench, engine: str, workers: int, count: int, media: Path, single: int
) -> dict[str, Any]:
    prefix = f"scale{engine}{workers}x" + uuid.uuid4().hex[:4]
    env = bench.env(prefix, STT_ENGINE=engine, KAFKA_TOPIC_PARTITIONS=str(PARTITIONS))
    api = bench.api(env, name=f"api-{prefix}")
    projector = bench.projector(env, name=f"projector-{prefix}")
    transcribers = bench.transcribers(env, workers, tag=prefix)
    await kafka_tools.wait_for_members(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TRANSCRIBER_GROUP"], workers, timeout=90
    )
    redis = jobs.redis_client(env)
    url = bench.media_url(media)
    out: dict[str, Any] = {"engine": engine, "workers": workers, "jobs": count}
    try:
        async with jobs.ResultsTap(env) as tap:
            if single:
                out["single_job"] = await single_jobs(bench, api.url, tap, redis, url, single)
            ids = [f"{prefix}-{i}" for i in range(count)]
            memory_before = await redis_used_memory(redis)
            kafka_before = kafka_bytes(bench, prefix)
            assert all(t.proc is not None for t in transcribers)
            meter = CpuMeter(
                {
                    "transcribers": [p for t in transcribers for p in tree(t.proc.pid)],
                    "projector": [projector.proc.pid] if projector.proc else [],
                    "api": [api.proc.pid] if api.proc else [],
                }
                | {k: [v] for k, v in bench.server_pids().items()}
            )
            meter.start()
            first = await submit_all(api.url, ids, url)
            await tap.wait_completed(set(ids), timeout=600)
            finished = [tap.completed[rid] for rid in ids]
            last_done = max(finished)
            cores = meter.stop()
            # Wait for the projector too: every job terminal in Redis.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                async with redis.pipeline(transaction=False) as pipe:
                    for rid in ids:
                        pipe.hget(f"stt:job:{rid}", "phase")
                    phases = await pipe.execute()
                if all(p == b"2" for p in phases):
                    break
                await asyncio.sleep(0.05)
            in_redis = time.time()
            memory_after = await redis_used_memory(redis)
            statuses = [e.status for rid in ids for _, e in tap.events[rid][-1:]]
            failed = sum(1 for s in statuses if s != "COMPLETED")
            ordered = sorted(finished)
            steady = (
                (len(ordered) - 1) / (ordered[-1] - ordered[0]) * 60
                if len(ordered) > 1 and ordered[-1] > ordered[0]
                else float("nan")
            )
            wall = last_done - first
            busy_transcriber_s = cores["transcribers"] * (last_done - first)
            out.update(
                {
                    "jobs_per_minute": round(count / wall * 60, 1),
                    "jobs_per_minute_steady": round(steady, 1),
                    "seconds": round(wall, 2),
                    "failed": failed,
                    "projection_lag_after_last_s": round(in_redis - last_done, 3),
                    "cores_busy": cores,
                    "transcriber_cpu_ms_per_job": round(busy_transcriber_s / count * 1000, 1),
                    "workers_used": len({
                        e.worker for rid in ids for _, e in tap.events[rid][-1:]
                    }),
                    "jobs_per_worker": sorted(
                        Counter(e.worker for rid in ids for _, e in tap.events[rid][-1:])
                        .values(),
                        reverse=True,
                    ),
                    "redis_bytes_per_job": round((memory_after - memory_before) / count),
                    "kafka_bytes_per_job": round((kafka_bytes(bench, prefix) - kafka_before)
                                                 / count),
                    "events_per_job": round(sum(len(tap.events[rid]) for rid in ids) / count, 2),
                }
            )
    finally:
        await redis.aclose()
        bench.stop(*transcribers, projector, api)
    print(
        f"  scale {engine} x{workers}: {out['jobs_per_minute']:.0f} jobs/min "
        f"({count} jobs in {out['seconds']:.1f}s, {out['workers_used']} workers used)",
        flush=True,
    )
    return out


async def run(bench: Bench) -> dict[str, Any]:
    clip = short_clip(bench.cache)
    counts = {"fake": 100 if bench.quick else 300, "whisper": 12 if bench.quick else 36}
    out: dict[str, Any] = {
        "clip_seconds": clip.seconds,
        "partitions": PARTITIONS,
        "cpu_count": CPU_COUNT,
        "jobs": counts,
        "runs": {"fake": [], "whisper": []},
    }
    for engine in ("fake", "whisper"):
        for workers in WORKER_COUNTS:
            single = (5 if bench.quick else 20) if engine == "fake" and workers == 1 else 0
            result = await one_count(bench, engine, workers, counts[engine], clip.path, single)
            if "single_job" in result:
                out["single_job_fake"] = result.pop("single_job")
            out["runs"][engine].append(result)
    return out
