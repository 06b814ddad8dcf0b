"""Scenario 4: long audio. Real-time factor and peak RSS of the worker on a long file (30 min;
5 min with --quick) and on shorter ones (5 and 10 min; 2 min with --quick), sequential
(`STT_BATCH_SIZE=0`) versus faster-whisper's BatchedInferencePipeline (`STT_BATCH_SIZE`), and the
word error rate of each against the sequential output (and against the text espeak-ng spoke).

Both modes run in a real transcriber process through the whole stack, one fresh process per file
and mode, its peak RSS reset after the model has loaded (`/proc/PID/clear_refs`) and read at the
end (VmHWM). The worker feeds the model windows of at most `STT_WINDOW_SECONDS` (cut at pauses),
in both modes.

Peak RSS must not grow with the audio length beyond the decoded samples (float32, 64 kB per
second): the growth from the shortest file (one window) to the longest is compared with the
growth of the samples, and so is the growth from the 10-minute file (two windows).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import jobs
from bench.media import Speech, make_speech
from bench.stack import Bench, memory_kib
from stt_testing import speech
from stt_transcriber import windows
from stt_transcriber.decode import SAMPLE_RATE

BATCH_SIZE = 8
WINDOW_SECONDS = 300  # the worker's default, set so that a .env cannot change the measurement
SAMPLE_BYTES_PER_SECOND = SAMPLE_RATE * 4


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


async def through_worker(
    bench: Bench, env: dict[str, str], api_url: str, file: Speech, batch_size: int
) -> dict[str, Any]:
    """One job on `file` by a fresh transcriber with `STT_BATCH_SIZE=batch_size` (0: sequential)."""
    env = env | {"STT_BATCH_SIZE": str(batch_size), "STT_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    (worker,) = bench.transcribers(env, 1, tag="long-" + uuid.uuid4().hex[:4])
    assert worker.proc is not None
    pid = worker.proc.pid
    redis = jobs.redis_client(env)
    try:
        await asyncio.sleep(2.0)  # settle after "ready"
        reset_peak(pid)
        baseline = memory_kib(pid).get("VmRSS", 0)
        sampled = baseline
        rid = "long-" + uuid.uuid4().hex[:10]
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            t0, _t1, _ = await jobs.submit(http, rid, bench.media_url(file.path))
            watcher = asyncio.create_task(jobs.watch_redis(redis, rid))
            deadline = time.monotonic() + file.seconds * 1.5 + 120
            while not watcher.done():
                sampled = max(sampled, memory_kib(pid).get("VmRSS", 0))
                if time.monotonic() > deadline:
                    watcher.cancel()
                    raise TimeoutError(f"{file.seconds:.0f} s file not done in time")
                await asyncio.sleep(0.2)
            done = await watcher
            peak = max(sampled, memory_kib(pid).get("VmHWM", 0))
            body = (await http.get(f"/api/v1/transcribe/{rid}", headers=jobs.HEADERS)).json()
    finally:
        await redis.aclose()
        bench.stop(worker)
    if body.get("status") != "COMPLETED":
        raise RuntimeError(f"long job ended {body.get('status')}: {body.get('error')}")
    return {
        "mode": (
            f"batched (worker, STT_BATCH_SIZE={batch_size}: BatchedInferencePipeline, VAD)"
            if batch_size
            else "sequential (worker)"
        ),
        "audio_seconds": file.seconds,
        "seconds": body["processing_time"],
        "end_to_end_seconds": round(done - t0, 3),
        "rtf": round(body["processing_time"] / file.seconds, 4),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_peak_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - baseline) / 1024, 1),
        "samples_mib": round(file.seconds * SAMPLE_BYTES_PER_SECOND / 2**20, 1),
        "windows": windows.window_count(
            int(file.seconds * SAMPLE_RATE), SAMPLE_RATE, WINDOW_SECONDS
        ),
        "text": body.get("transcription", ""),
    }


def growth_check(short: dict[str, Any], long: dict[str, Any]) -> dict[str, float]:
    """Peak RSS growth from the short to the long file, against the growth of the samples."""
    rss = long["rss_growth_mib"] - short["rss_growth_mib"]
    samples = long["samples_mib"] - short["samples_mib"]
    return {
        "rss_growth_delta_mib": round(rss, 1),
        "samples_delta_mib": round(samples, 1),
        "excess_mib": round(rss - samples, 1),
        "excess_per_audio_hour_mib": round(
            (rss - samples) / ((long["audio_seconds"] - short["audio_seconds"]) / 3600), 1
        ),
    }


async def run(bench: Bench) -> dict[str, Any]:
    # The short file is one window; the medium and long ones are several (STT_WINDOW_SECONDS), so
    # medium → long shows whether more windows of the same kind cost more memory.
    lengths = {"short": 120.0, "long": 300.0} if bench.quick else {
        "short": 300.0, "medium": 600.0, "long": 1800.0
    }
    files = {label: make_speech(seconds, bench.cache) for label, seconds in lengths.items()}
    env = bench.env()
    api = bench.api(env, name="api-long")
    bench.projector(env)
    results: dict[str, dict[str, Any]] = {}
    try:
        for label, file in files.items():
            for mode, batch_size in (("sequential", 0), ("batched", BATCH_SIZE)):
                result = await through_worker(bench, env, api.url, file, batch_size)
                results[f"{mode}_{label}"] = result
                print(f"  long {mode} {file.seconds:.0f}s: rtf {result['rtf']:.3f}", flush=True)
    finally:
        bench.stop_all()
    out: dict[str, Any] = {"batch_size": BATCH_SIZE, "window_seconds": WINDOW_SECONDS, "files": {}}
    for label, file in files.items():
        seq, bat = results[f"sequential_{label}"], results[f"batched_{label}"]
        out["files"][label] = {
            "audio_seconds": file.seconds,
            "sequential": {k: v for k, v in seq.items() if k != "text"},
            "batched": {k: v for k, v in bat.items() if k != "text"},
            "wer_batched_vs_sequential": round(speech.wer(seq["text"], bat["text"]), 4),
            "wer_sequential_vs_reference": round(speech.wer(file.text, seq["text"]), 4),
            "wer_batched_vs_reference": round(speech.wer(file.text, bat["text"]), 4),
            "speedup_batched": round(seq["seconds"] / bat["seconds"], 2),
        }
    out["rss_growth"] = {
        mode: growth_check(results[f"{mode}_short"], results[f"{mode}_long"])
        for mode in ("sequential", "batched")
    }
    if "medium" in files:
        out["rss_growth_multi_window"] = {
            mode: growth_check(results[f"{mode}_medium"], results[f"{mode}_long"])
            for mode in ("sequential", "batched")
        }
    return out
