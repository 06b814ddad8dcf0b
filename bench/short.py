"""Scenario `short`: a queue of short jobs (10-60 s of speech, the integration guide's traffic).

All jobs are submitted at once through the real stack (API, Kafka, one transcriber, projector,
Redis); jobs/min and the p50/p95 latency of each job (its submit to its result event) are set
against, in the same run and this process, (a) bare faster-whisper's per-file sequential loop
and (b) its `BatchedInferencePipeline` per file, with the same model, compute type, threads,
beam size and VAD as the worker. A bare loop's "latency" of job i is when the loop finishes it,
as if every file had been queued at once: the same queue the service gets. WER of each against
the sequential output; the worker's peak RSS (VmHWM, reset once the model has loaded); and a
lone job on the idle service against bare on the same file, repeated.

The worker's cross-job batching (issue 15: `STT_CROSS_JOB_BATCH`, max jobs per batch; 1 = one
job at a time) is run at each batch size of `--batch-sizes` (default: `STT_CROSS_JOB_BATCH` from
the environment if set, else 1, 4 and 8 where the worker has the setting, else the worker as it
is). `STT_BATCH_WAIT_MS` is passed on from the environment too. `--short-jobs N` sets the queue
length (default 60; 12 with --quick).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid
from typing import Any

import httpx
from faster_whisper import BatchedInferencePipeline

from bench import jobs
from bench.long import reset_peak
from bench.media import Speech, short_clip
from bench.overhead import Bare
from bench.short_clips import MAX_SECONDS, MIN_SECONDS, make_clips
from bench.stack import Bench, cpu_seconds, memory_kib
from stt_common import settings as stt_settings
from stt_testing import speech

DEFAULT_JOBS = 60
QUICK_JOBS = 12
BARE_BATCH_SIZE = 8  # faster-whisper's default for BatchedInferencePipeline.transcribe
LONE_REPEATS = 5
QUICK_LONE_REPEATS = 3
LONE_SECONDS = 30  # the lone job's clip: the middle of the range
STALL_SECONDS = 300  # no job finished for this long: the scenario fails, naming the jobs left
CROSS_JOB_ENV = "STT_CROSS_JOB_BATCH"
PASSED_ON = (CROSS_JOB_ENV, "STT_BATCH_WAIT_MS")  # read from the environment when set


def cross_job_default() -> int | None:
    """The worker's default for STT_CROSS_JOB_BATCH, None where its settings lack it."""
    for value in vars(stt_settings).values():
        if not isinstance(value, type) or not issubclass(value, stt_settings._Base):
            continue
        prefix = str(value.model_config.get("env_prefix", ""))
        for name, info in value.model_fields.items():
            if (prefix + name).upper() == CROSS_JOB_ENV:
                default = info.default
                return int(default) if isinstance(default, int) else None
    return None


def batch_sizes(option: str | None, quick: bool) -> list[int | None]:
    """The batch sizes to run the service at; None = the worker's own default (or no setting)."""
    if option:
        return [int(v) for v in option.split(",") if v.strip()]
    if os.environ.get(CROSS_JOB_ENV):
        return [int(os.environ[CROSS_JOB_ENV])]
    if cross_job_default() is None or quick:
        return [None]
    return [1, 4, 8]


class BareLoops(Bare):
    """The two bare baselines: the model loaded once, called as the worker's engine calls it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = BatchedInferencePipeline(self.model)

    def transcribe_batched(self, path: Any, language: str = "en") -> tuple[float, str]:
        started = time.perf_counter()
        segments, _info = self.pipeline.transcribe(
            str(path),
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            vad_parameters={"threshold": self.config.vad_threshold},
            condition_on_previous_text=self.config.condition_on_previous_text,
            batch_size=BARE_BATCH_SIZE,
        )
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return time.perf_counter() - started, text


def loop_summary(times: list[float], audio_seconds: float) -> dict[str, Any]:
    """A loop over the queue: job i is done when the loop has run files 0..i."""
    done, total = [], 0.0
    for t in times:
        total += t
        done.append(total)
    return {
        "seconds": round(total, 2),
        "jobs_per_minute": round(len(times) / total * 60, 2),
        "latency_seconds": {k: round(v, 2) for k, v in jobs.percentiles(done, (50, 95)).items()},
        "rtf": round(total / audio_seconds, 4),
    }


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word errors over all clips / words in all references (after `speech.normalise`)."""
    errors = words = 0.0
    for ref, hyp in zip(references, hypotheses, strict=True):
        n = len(speech.normalise(ref).split())
        if n:
            errors += speech.wer(ref, hyp) * n
            words += n
    return round(errors / words, 4) if words else float("nan")


def own_cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_bare(
    bare: BareLoops, clips: list[Speech], batched: bool
) -> tuple[list[float], list[str], float]:
    """Each clip in turn: (seconds per clip, texts, CPU seconds of the whole loop). Nothing else
    runs in this process meanwhile (the services are stopped), so its CPU time is the loop's."""
    call = bare.transcribe_batched if batched else bare.transcribe
    times, texts = [], []
    cpu = own_cpu_seconds()
    for clip in clips:
        seconds, text = await asyncio.to_thread(call, clip.path)
        times.append(seconds)
        texts.append(text)
    return times, texts, own_cpu_seconds() - cpu


async def submit_queue(
    api_url: str, bench: Bench, ids: list[str], clips: list[Speech]
) -> dict[str, float]:
    """Every job at once (16 submits in flight); returns when each submit was sent."""
    sent: dict[str, float] = {}
    todo = list(zip(ids, clips, strict=True))

    async def one(http: httpx.AsyncClient) -> None:
        while todo:
            rid, clip = todo.pop(0)
            t0, _t1, _ = await jobs.submit(http, rid, bench.media_url(clip.path))
            sent[rid] = t0

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        await asyncio.gather(*(one(http) for _ in range(16)))
    return sent


async def texts_of(api_url: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api_url, headers=jobs.HEADERS, timeout=30) as http:
        bodies = [(await http.get(f"/api/v1/transcribe/{rid}")).json() for rid in ids]
    return dict(zip(ids, bodies, strict=True))


async def service_run(
    bench: Bench,
    clips: list[Speech],
    batch: int | None,
    lone: Speech,
    lone_repeats: int,
    bare: BareLoops,
) -> tuple[dict[str, Any], list[str]]:
    """The queue through one transcriber at cross-job batch size `batch`; then lone jobs."""
    extra = {k: os.environ[k] for k in PASSED_ON if os.environ.get(k)}
    if batch is not None:
        extra[CROSS_JOB_ENV] = str(batch)
    prefix = "short" + uuid.uuid4().hex[:6]
    env = bench.env(prefix, **extra)
    api = bench.api(env, name=f"api-{prefix}")
    projector = bench.projector(env, name=f"projector-{prefix}")
    (worker,) = bench.transcribers(env, 1, tag=prefix)
    assert worker.proc is not None
    pid = worker.proc.pid
    redis = jobs.redis_client(env)
    ids = [f"{prefix}-{i}" for i in range(len(clips))]
    out: dict[str, Any] = {"cross_job_batch": batch, "settings": extra}
    try:
        async with jobs.ResultsTap(env) as tap:
            await asyncio.sleep(1.0)  # settle after "ready"
            reset_peak(pid)
            idle_kib = memory_kib(pid).get("VmRSS", 0)
            sampled = idle_kib
            cpu = {"worker": cpu_seconds(pid), "pipeline": pipeline_cpu(api, projector)}
            sent = await submit_queue(api.url, bench, ids, clips)
            first = min(sent.values())
            done, progressed = 0, time.monotonic()
            while done < len(ids):
                sampled = max(sampled, memory_kib(pid).get("VmRSS", 0))
                await asyncio.sleep(0.25)
                now_done = sum(1 for rid in ids if rid in tap.completed)
                if now_done > done:
                    done, progressed = now_done, time.monotonic()
                elif time.monotonic() - progressed > STALL_SECONDS:
                    pending = [rid for rid in ids if rid not in tap.completed]
                    raise RuntimeError(
                        f"no job finished for {STALL_SECONDS} s; {len(pending)} pending: "
                        + ", ".join(pending[:5])
                    )
            peak_kib = max(sampled, memory_kib(pid).get("VmHWM", 0))
            worker_cpu = cpu_seconds(pid) - cpu["worker"]
            api_projector_cpu = pipeline_cpu(api, projector) - cpu["pipeline"]
            latencies = [tap.completed[rid] - sent[rid] for rid in ids]
            wall = max(tap.completed[rid] for rid in ids) - first
            bodies = await texts_of(api.url, ids)
            failed = [rid for rid in ids if bodies[rid].get("status") != "COMPLETED"]
            out |= {
                "seconds": round(wall, 2),
                "jobs_per_minute": round(len(ids) / wall * 60, 2),
                "latency_seconds": {
                    k: round(v, 2) for k, v in jobs.percentiles(latencies, (50, 95)).items()
                },
                "failed": len(failed),
                # CPU time is steadier than wall time on shared cores: other work slows the
                # wall clock of a loop far more than the CPU seconds it needs.
                "worker_cpu_seconds_per_job": round(worker_cpu / len(ids), 3),
                "api_projector_cpu_seconds_per_job": round(api_projector_cpu / len(ids), 3),
                "worker_rss_idle_mib": round(idle_kib / 1024, 1),
                "worker_rss_peak_mib": round(peak_kib / 1024, 1),
            }
            texts = [str(bodies[rid].get("transcription", "")) for rid in ids]
            out["lone"] = await lone_jobs(bench, api.url, tap, redis, lone, lone_repeats, bare)
    finally:
        await redis.aclose()
        bench.stop(worker, projector, api)
    return out, texts


def pipeline_cpu(*services: Any) -> float:
    return sum(cpu_seconds(s.proc.pid) for s in services if s.proc is not None)


async def lone_jobs(
    bench: Bench,
    api_url: str,
    tap: jobs.ResultsTap,
    redis: Any,
    clip: Speech,
    repeats: int,
    bare: BareLoops,
) -> dict[str, Any]:
    """One job at a time on the idle service against bare on the same file (bare first in even
    repeats, second in odd ones); the hint client and the zero-delay (Redis-notified) one."""
    ideal, hint, bare_s = [], [], []
    url = bench.media_url(clip.path)
    for repeat in range(repeats):
        if repeat % 2 == 0:
            seconds, _ = await asyncio.to_thread(bare.transcribe, clip.path)
        rid = "lone-" + uuid.uuid4().hex[:10]
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            t0, _t1, first = await jobs.submit(http, rid, url)
        watcher = asyncio.create_task(jobs.watch_redis(redis, rid))
        polled = await jobs.poll_until_done(api_url, rid, "hint", first, timeout=300)
        in_redis = await watcher
        await tap.wait_completed({rid}, 30)
        if repeat % 2 == 1:
            seconds, _ = await asyncio.to_thread(bare.transcribe, clip.path)
        ideal.append(in_redis - t0)
        hint.append(polled.done_at - t0)
        bare_s.append(seconds)
    return {
        "clip_seconds": clip.seconds,
        "repeats": repeats,
        "bare_seconds": round(jobs.median(bare_s), 3),
        "end_to_end_seconds": {
            "ideal": round(jobs.median(ideal), 3),
            "hint": round(jobs.median(hint), 3),
        },
        "ratio": {
            "ideal": round(jobs.median([i / b for i, b in zip(ideal, bare_s, strict=True)]), 3),
            "hint": round(jobs.median([h / b for h, b in zip(hint, bare_s, strict=True)]), 3),
        },
    }


async def run(bench: Bench) -> dict[str, Any]:
    count = int(bench.options.get("short_jobs") or (QUICK_JOBS if bench.quick else DEFAULT_JOBS))
    sizes = batch_sizes(bench.options.get("batch_sizes"), bench.quick)
    made = await asyncio.to_thread(make_clips, count, bench.cache)
    kinds = [kind for kind, _ in made]
    clips = [clip for _, clip in made]
    lone = next((c for c in clips if c.seconds == LONE_SECONDS), None) or min(
        clips, key=lambda c: abs(c.seconds - LONE_SECONDS)
    )
    audio = sum(c.seconds for c in clips)
    bare = await asyncio.to_thread(BareLoops, bench.model)
    await asyncio.to_thread(bare.transcribe, short_clip(bench.cache).path)  # first-call costs
    await asyncio.to_thread(bare.transcribe_batched, short_clip(bench.cache).path)

    seq_times, seq_texts, seq_cpu = await run_bare(bare, clips, batched=False)
    print(f"  short bare sequential: {count / sum(seq_times) * 60:.1f} jobs/min", flush=True)
    services: list[dict[str, Any]] = []
    service_texts: list[list[str]] = []
    for size in sizes:
        result, texts = await service_run(
            bench, clips, size, lone, QUICK_LONE_REPEATS if bench.quick else LONE_REPEATS, bare
        )
        services.append(result)
        service_texts.append(texts)
        print(
            f"  short service (cross-job batch {size or 'default'}): "
            f"{result['jobs_per_minute']:.1f} jobs/min, lone hint ratio "
            f"{result['lone']['ratio']['hint']:.3f}",
            flush=True,
        )
    bat_times, bat_texts, bat_cpu = await run_bare(bare, clips, batched=True)
    print(f"  short bare batched: {count / sum(bat_times) * 60:.1f} jobs/min", flush=True)

    sequential = loop_summary(seq_times, audio)
    batched = loop_summary(bat_times, audio)
    references = [c.text for c in clips]
    sequential["wer_vs_spoken"] = corpus_wer(references, seq_texts)
    sequential["cpu_seconds_per_job"] = round(seq_cpu / count, 3)
    batched["cpu_seconds_per_job"] = round(bat_cpu / count, 3)
    batched["wer_vs_sequential"] = corpus_wer(seq_texts, bat_texts)
    batched["wer_vs_spoken"] = corpus_wer(references, bat_texts)

    def by_kind(refs: list[str], hyps: list[str]) -> dict[str, float]:
        return {
            kind: corpus_wer(
                [r for r, k in zip(refs, kinds, strict=True) if k == kind],
                [h for h, k in zip(hyps, kinds, strict=True) if k == kind],
            )
            for kind in sorted(set(kinds))
        }

    batched["wer_vs_sequential_by_kind"] = by_kind(seq_texts, bat_texts)
    for result, texts in zip(services, service_texts, strict=True):
        result["wer_vs_sequential"] = corpus_wer(seq_texts, texts)
        result["wer_vs_sequential_by_kind"] = by_kind(seq_texts, texts)
        result["wer_vs_spoken"] = corpus_wer(references, texts)
        result["speedup_vs_sequential"] = round(
            result["jobs_per_minute"] / sequential["jobs_per_minute"], 3
        )
        result["cpu_speedup_vs_sequential"] = round(
            sequential["cpu_seconds_per_job"] / result["worker_cpu_seconds_per_job"], 3
        )
    return {
        "jobs": count,
        "clip_seconds": {
            "min": MIN_SECONDS,
            "max": MAX_SECONDS,
            "mean": round(audio / count, 1),
            "total": audio,
        },
        "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "cross_job_batch_in_worker": cross_job_default() is not None,
        "cross_job_batch_default": cross_job_default(),
        "bare_batch_size": BARE_BATCH_SIZE,
        "bare_sequential": sequential,
        "bare_batched": batched,
        "service": services,
        "bare_batched_speedup_vs_sequential": round(
            batched["jobs_per_minute"] / sequential["jobs_per_minute"], 3
        ),
        "bare_batched_cpu_speedup_vs_sequential": round(
            sequential["cpu_seconds_per_job"] / batched["cpu_seconds_per_job"], 3
        ),
    }
