"""Scenario 2: the API under load, against the real Redis and Kafka.

No transcriber runs, so submitted jobs stay PROCESSING; COMPLETED jobs are made beforehand by
publishing result events (60 s of transcript each) that the real projector projects into Redis,
which also measures the projector's rate. Each configuration runs three phases, each a closed
loop of N keep-alive connections for a fixed time (`bench.loadgen`): submit, poll of a PROCESSING
job, poll of a COMPLETED job. The rate limiter stays on (with a limit far above the load), as in
a deployment, except in the configuration that measures what it costs.

On 2 cores the generator competes with the API: in the "pinned" configurations the API process
is pinned to CPU 1 and the generator to CPU 0 (Redis and Kafka float), so the API has one core
to itself, which is all one Python process can use anyway.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench import jobs, profiles
from bench.media import make_speech
from bench.stack import CPU_COUNT, REPO, Bench, CpuMeter, set_affinity, tree
from stt_common.job_store import job_key
from stt_common.messages import JobStatus, ResultEvent, Segment, Source, utcnow
from stt_testing import processes

CONNECTIONS = 16
COMPLETED_JOBS = 1000
PHASES = ("submit", "poll_processing", "poll_completed")


def completed_event(request_id: str, text: str, seconds: float) -> ResultEvent:
    words = text.split()
    per = max(1, len(words) // 12)
    pieces = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
    step = seconds / len(pieces)
    segments = [
        Segment(start=round(i * step, 3), end=round((i + 1) * step, 3), text=piece)
        for i, piece in enumerate(pieces)
    ]
    return ResultEvent(
        request_id=request_id,
        status=JobStatus.COMPLETED,
        stage="done",
        progress=1.0,
        transcription=text,
        duration=seconds,
        confidence=0.91,
        processing_time=4.7,
        language="en",
        language_probability=0.99,
        segments=segments,
        worker="bench",
        media_url="http://127.0.0.1:9/bench.wav",
        requested_language="en",
        source=Source.API,
        submitted_at=utcnow(),
    )


async def make_completed(bench: Bench, env: dict[str, str], count: int) -> dict[str, Any]:
    """Publishes `count` COMPLETED result events and times the projector putting them in Redis."""
    text = make_speech(60, bench.cache).text
    ids = [f"done-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    projector = bench.projector(env)
    redis = jobs.redis_client(env)
    producer = AIOKafkaProducer(
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all", enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    try:
        started = time.time()
        sends = [
            await producer.send(
                env["KAFKA_TOPIC_RESULTS"],
                completed_event(rid, text, 60.0).model_dump_json(exclude_none=True).encode(),
                key=rid.encode(),
            )
            for rid in ids
        ]
        await asyncio.gather(*sends)
        published = time.time()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            async with redis.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hget(job_key(rid), "phase")
                phases = await pipe.execute()
            if all(p == b"2" for p in phases):
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("the projector did not project the COMPLETED events in 180 s")
        done = time.time()
    finally:
        await producer.stop()
        await redis.aclose()
        bench.stop(projector)
    return {
        "ids": ids,
        "projector_events_per_s": round(count / (done - started), 1),
        "publish_seconds": round(published - started, 3),
        "project_seconds": round(done - started, 3),
    }


def loadgen(
    port: int, mode: str, duration: float, out: Path, *, ids: Path | None = None,
    prefix: str = "load", cpu: int | None = None, accepted: Path | None = None,
    warmup: float = 1.0, connections: int = CONNECTIONS,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "bench.loadgen", "--port", str(port), "--mode", mode,
        "--connections", str(connections), "--duration", str(duration),
        "--warmup", str(warmup), "--prefix", prefix, "--out", str(out),
    ]
    if ids is not None:
        cmd += ["--ids", str(ids)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if accepted is not None:
        cmd += ["--accepted-out", str(accepted)]
    env = os.environ | {"STT_BENCH_API_KEY": processes.API_KEY}
    return subprocess.Popen(cmd, cwd=REPO, env=env)


async def redis_calls(env: dict[str, str]) -> dict[str, int]:
    """Calls per Redis command so far (INFO commandstats), commands run inside scripts too."""
    redis = jobs.redis_client(env)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict[str, float]:
    """Redis calls per request between two `redis_calls`, by command (those above 0.01)."""
    found = {
        name: round((calls - before.get(name, 0)) / max(1, requests), 2)
        for name, calls in after.items()
    }
    return dict(sorted((k, v) for k, v in found.items() if v >= 0.01 and k != "info"))


async def run_phase(
    bench: Bench, api_pid: int, port: int, mode: str, duration: float, pinned: bool,
    scratch: Path, ids: Path | None = None, accepted: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    out = scratch / f"{uuid.uuid4().hex[:8]}.json"
    kind = "submit" if mode == "submit" else "poll"
    meter_pids = {"api": tree(api_pid)} | {k: [v] for k, v in bench.server_pids().items()}
    meter = CpuMeter(meter_pids)
    # Redis work per request: counted over the generator's whole run (every request it sends
    # is answered before it exits), so unlike the rates it does not depend on the machine's load.
    calls_before = await redis_calls(env) if env is not None else None
    proc = loadgen(
        port, kind, duration, out, ids=ids, prefix="load-" + uuid.uuid4().hex[:6],
        cpu=0 if pinned else None, accepted=accepted,
    )
    await asyncio.sleep(1.0)  # the generator's warm-up second
    meter.start()
    await asyncio.sleep(duration)
    cores = meter.stop()
    rc = await asyncio.to_thread(proc.wait, duration + 60)
    if rc != 0:
        raise RuntimeError(f"load generator exited {rc}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["cores_busy"] = cores
    if env is not None and calls_before is not None:
        result["redis_calls_per_request"] = per_request(
            calls_before, await redis_calls(env), result["sent"]
        )
    return result


async def run_config(
    bench: Bench, env: dict[str, str], name: str, workers: int, pinned: bool,
    duration: float, scratch: Path, completed_ids: Path, processing_ids: Path | None,
) -> tuple[dict[str, Any], Path]:
    slug = "".join(c if c.isalnum() else "-" for c in name)
    api = bench.api(env, workers=workers, name=f"api-{slug}")
    assert api.proc is not None
    try:
        await asyncio.sleep(1.0 if workers == 1 else 3.0)  # every worker process up
        pids = tree(api.proc.pid)
        if pinned and not set_affinity(pids, {1}):
            pinned = False
        accepted = scratch / f"accepted-{name}.txt"
        results: dict[str, Any] = {
            "api_processes": workers, "pinned": pinned, "connections": CONNECTIONS,
            "rate_limit": env.get("STT_RATE_LIMIT_PER_MINUTE") != "0",
        }
        results["submit"] = await run_phase(
            bench, api.proc.pid, api.port, "submit", duration, pinned, scratch, accepted=accepted,
            env=env,
        )
        if processing_ids is None:
            chosen = accepted.read_text().split()
            random.Random(1).shuffle(chosen)
            processing_ids = scratch / "processing.txt"
            processing_ids.write_text("\n".join(chosen[:2000]))
        results["poll_processing"] = await run_phase(
            bench, api.proc.pid, api.port, "poll", duration, pinned, scratch, ids=processing_ids,
            env=env,
        )
        results["poll_completed"] = await run_phase(
            bench, api.proc.pid, api.port, "poll", duration, pinned, scratch, ids=completed_ids,
            env=env,
        )
    finally:
        bench.stop(api)
    line = ", ".join(
        f"{p} {results[p]['ok_rps']:.0f}/s p99 {results[p]['latency_ms']['p99']:.1f} ms"
        for p in PHASES
    )
    print(f"  api [{name}]: {line}", flush=True)
    return results, processing_ids


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of each phase's rate and percentiles; the rounds kept as they were."""
    first = rounds[0]
    out = {k: v for k, v in first.items() if k not in PHASES}
    for phase in PHASES:
        runs = [r[phase] for r in rounds]
        out[phase] = {
            "ok_rps": round(jobs.median([r["ok_rps"] for r in runs]), 1),
            "latency_ms": {
                p: round(jobs.median([r["latency_ms"][p] for r in runs]), 2)
                for p in ("p50", "p95", "p99", "max")
            },
            "non_2xx": sum(r["requests"] - r["ok"] for r in runs),
            "errors": sum(sum(r["errors"].values()) for r in runs),
            "generator_cpu": round(jobs.median([r["generator_cpu"] for r in runs]), 2),
            "cores_busy": {
                k: round(jobs.median([r["cores_busy"][k] for r in runs]), 2)
                for k in runs[0]["cores_busy"]
            },
            "rounds_ok_rps": [r["ok_rps"] for r in runs],
            **(
                {"redis_calls_per_request": runs[0]["redis_calls_per_request"]}
                if "redis_calls_per_request" in runs[0]
                else {}
            ),
            "rounds_p99_ms": [r["latency_ms"]["p99"] for r in runs],
        }
    return out


async def profile(
    bench: Bench, env: dict[str, str], mode: str, ids: Path | None, scratch: Path,
    duration: float,
) -> dict[str, Any]:
    """One API process under cProfile while one phase runs: where its time goes, per request.

    The profiler's clock is wall time; the API is pinned to one core and saturated, so that is
    close to its CPU time (the profiler itself slows it two to three times over).
    """
    port = processes.free_port()
    out = scratch / f"profile-{mode}.prof"
    log = (bench.workdir / f"api-profile-{mode}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.profile_api", str(out), "--port", str(port)],
        cwd=bench.workdir, env=env | {"PYTHONPATH": str(REPO)}, stdout=log, stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the profiled API did not start")
                await asyncio.sleep(0.2)
        set_affinity(tree(proc.pid), {1})
        result = scratch / f"profile-{mode}.json"
        proc.send_signal(signal.SIGUSR1)
        gen = loadgen(
            port, "submit" if mode == "submit" else "poll", duration, result, ids=ids,
            cpu=0, warmup=0.5, prefix="prof-" + uuid.uuid4().hex[:6],
        )
        await asyncio.to_thread(gen.wait, duration + 60)
        proc.send_signal(signal.SIGUSR2)
        load = json.loads(result.read_text())
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        log.close()
    summary = profiles.summarise(str(out), load["sent"])
    summary["rps_under_profiler"] = load["ok_rps"]
    return summary


async def run(bench: Bench) -> dict[str, Any]:
    duration = 4.0 if bench.quick else 5.0
    scratch = bench.workdir / "api-load"
    scratch.mkdir(exist_ok=True)
    env = bench.env(STT_RATE_LIMIT_PER_MINUTE="1000000000")
    made = await make_completed(bench, env, COMPLETED_JOBS)
    completed_ids = scratch / "completed.txt"
    completed_ids.write_text("\n".join(made.pop("ids")))
    no_limit = {"STT_RATE_LIMIT_PER_MINUTE": "0"}
    # (name, API processes, pinned, extra settings)
    configs: list[tuple[str, int, bool, dict[str, str]]] = [
        ("1 process, pinned", 1, True, {}),
        ("1 process, pinned, no rate limit", 1, True, no_limit),
        ("2 processes", 2, False, {}),
    ]
    if not bench.quick:
        configs.insert(1, ("1 process, unpinned", 1, False, {}))
        configs.append(("4 processes", 4, False, {}))
    out: dict[str, Any] = {
        "cpu_count": CPU_COUNT,
        "connections": CONNECTIONS,
        "phase_seconds": duration,
        "rounds": 1 if bench.quick else 2,
        "completed_jobs": COMPLETED_JOBS,
        "projector": made,
        "configs": {},
    }
    processing_ids: Path | None = None
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in configs}
    for _ in range(out["rounds"]):  # configurations interleaved, so drift hits them alike
        for name, workers, pinned, extra in configs:
            result, processing_ids = await run_config(
                bench, env | extra, name, workers, pinned, duration, scratch,
                completed_ids, processing_ids,
            )
            rounds[name].append(result)
    out["configs"] = {name: combine(results) for name, results in rounds.items()}
    assert processing_ids is not None
    prof_seconds = 3.0 if bench.quick else 6.0
    out["profile"] = {
        "poll_processing": await profile(
            bench, env, "poll", processing_ids, scratch, prof_seconds
        ),
        "submit": await profile(bench, env, "submit", None, scratch, prof_seconds),
    }
    return out
