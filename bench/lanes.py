"""Scenario `lanes` (issue 16 item 4): interactive jobs behind a backlog of batch jobs.

One API, projector and transcriber (the real model, 12 partitions per lane) on 6 s of speech:

1. idle: interactive jobs one at a time on the idle service: each one's wait (202 -> the worker's
   first event, "downloading") and end-to-end time (submit -> its final event);
2. a backlog of batch jobs (`priority: batch`, >= 200 in full) submitted at once; the batch
   lane's jobs/min alone is taken over its first completions (idle throughput) and the mean
   processing time of those jobs is "one average job duration";
3. while the backlog waits, interactive jobs one at a time, each after a pause of
   `GAP_JOBS` average job durations (so interactive work is about a tenth of the transcriber's
   time): their wait and end-to-end time, and the batch lane's jobs/min meanwhile.

Targets: interactive wait p50 <= one average job duration, p95 <= two; the batch lane keeps >= 80%
of its idle throughput. `--lanes-backlog N` (or --quick) runs it smaller; the interactive jobs
then stop early so that the backlog never drains while they are measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx

from bench import jobs
from bench.media import make_speech
from bench.stack import Bench

CLIP_SECONDS = 6  # short speech (one sentence or two): about a second of work on 2 free cores
BACKLOG = 240
QUICK_BACKLOG = 60
IDLE_JOBS = 5
INTERACTIVE_JOBS = 20
GAP_JOBS = 9  # pause between interactive jobs, in average job durations
IDLE_SAMPLE = 0.15  # share of the backlog whose completions give the idle batch throughput
LEFT_AT_LEAST = 10  # batch jobs still waiting for an interactive job to be measured


async def submit(http: httpx.AsyncClient, rid: str, url: str, priority: str | None) -> float:
    body = {"request_id": rid, "media_url": url, "language": "en"}
    if priority:
        body["priority"] = priority
    response = await http.post("/api/v1/transcribe", json=body, headers=jobs.HEADERS)
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
    return time.time()


def started_at(tap: jobs.ResultsTap, rid: str) -> float | None:
    """emitted_at of the job's first event from a worker (its pickup)."""
    for _, event in tap.events.get(rid, []):
        if event.worker is not None or event.stage not in (None, "queued"):
            return event.emitted_at.timestamp()
    return None


async def interactive_job(
    http: httpx.AsyncClient, tap: jobs.ResultsTap, url: str, tag: str
) -> dict[str, float]:
    rid = f"{tag}-{uuid.uuid4().hex[:10]}"
    t0 = time.time()
    accepted = await submit(http, rid, url, None)
    await tap.wait_completed({rid}, timeout=600)
    final = tap.events[rid][-1]
    began = started_at(tap, rid) or accepted
    return {
        "submitted": t0,
        "wait": max(0.0, began - accepted),
        "end_to_end": final[0] - t0,
        "done": final[0],
    }


def rate_per_minute(moments: list[float]) -> float:
    moments = sorted(moments)
    if len(moments) < 2 or moments[-1] <= moments[0]:
        return float("nan")
    return (len(moments) - 1) / (moments[-1] - moments[0]) * 60


def summary(values: list[float]) -> dict[str, float]:
    pct = jobs.percentiles(values, (50, 95))
    return {k: round(v, 3) for k, v in pct.items()} | {"mean": round(statistics.fmean(values), 3)}


async def run(bench: Bench) -> dict[str, Any]:
    backlog_size = bench.options.get("lanes_backlog") or (QUICK_BACKLOG if bench.quick else BACKLOG)
    clip = make_speech(CLIP_SECONDS, bench.cache, seed=13)
    prefix = "lanes" + uuid.uuid4().hex[:6]
    env = bench.env(prefix)
    api = bench.api(env, name=f"api-{prefix}")
    bench.projector(env, name=f"projector-{prefix}")
    bench.transcribers(env, 1, tag=prefix)
    url = bench.media_url(clip.path)
    out: dict[str, Any] = {"clip_seconds": clip.seconds, "transcribers": 1, "partitions": 12}
    async with (
        jobs.ResultsTap(env) as tap,
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
    ):
        idle = [await interactive_job(http, tap, url, "idle") for _ in range(IDLE_JOBS)]
        out["idle"] = {
            "jobs": IDLE_JOBS,
            "wait_s": summary([j["wait"] for j in idle[1:]]),  # the first one warms up
            "end_to_end_s": summary([j["end_to_end"] for j in idle[1:]]),
        }

        backlog = [f"batch-{i}-{uuid.uuid4().hex[:6]}" for i in range(backlog_size)]
        queue = list(backlog)

        async def submitter() -> None:
            while queue:
                await submit(http, queue.pop(0), url, "batch")

        await asyncio.gather(*(submitter() for _ in range(8)))
        sample = max(5, int(backlog_size * IDLE_SAMPLE))
        async with asyncio.timeout(1200):  # partitions are not FIFO among themselves: any jobs
            while sum(r in tap.completed for r in backlog) < sample:
                await asyncio.sleep(0.2)
        done_batch = sorted(tap.completed[r] for r in backlog if r in tap.completed)
        idle_rate = rate_per_minute(done_batch)
        durations = [
            tap.events[r][-1][1].processing_time or 0.0 for r in backlog if r in tap.completed
        ]
        job_seconds = statistics.fmean(durations)
        out["batch_idle"] = {
            "jobs": len(done_batch),
            "jobs_per_minute": round(idle_rate, 1),
            "job_seconds_mean": round(job_seconds, 3),
        }

        measured: list[dict[str, float]] = []
        left: list[int] = []
        for _ in range(INTERACTIVE_JOBS):
            waiting = sum(r not in tap.completed for r in backlog)
            if waiting < LEFT_AT_LEAST:
                break
            left.append(waiting)
            measured.append(await interactive_job(http, tap, url, "interactive"))
            await asyncio.sleep(GAP_JOBS * job_seconds)
        if not measured:
            raise RuntimeError("the backlog drained before any interactive job: raise it")
        window = (measured[0]["submitted"], measured[-1]["done"])
        during = [t for r, t in tap.completed.items() if r in set(backlog)]
        during = [t for t in during if window[0] <= t <= window[1]]
        batch_rate = len(during) / (window[1] - window[0]) * 60
        waits = [j["wait"] for j in measured]
        out["behind_backlog"] = {
            "jobs": len(measured),
            "batch_waiting_at_submit": {"min": min(left), "max": max(left)},
            "wait_s": summary(waits),
            "end_to_end_s": summary([j["end_to_end"] for j in measured]),
            "wait_in_job_durations": summary([w / job_seconds for w in waits]),
            "batch_jobs_per_minute": round(batch_rate, 1),
            "batch_throughput_kept": round(batch_rate / idle_rate, 3),
            "gap_job_durations": GAP_JOBS,
        }
        p = jobs.percentiles(waits, (50, 95))
        out["targets"] = {
            "wait_p50_le_1_job": p["p50"] <= job_seconds,
            "wait_p95_le_2_jobs": p["p95"] <= 2 * job_seconds,
            "batch_keeps_80_percent": batch_rate >= 0.8 * idle_rate,
        }
        out["backlog"] = backlog_size
    return out
