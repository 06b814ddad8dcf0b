"""Scenario 1: the system's overhead against bare faster-whisper on the same file.

Each repeat runs the file twice, back to back: in this process with faster-whisper alone (the
model loaded once, the same settings as the worker), and through the API, Kafka, one
transcriber, the projector and Redis (bare first in even repeats, second in odd ones). Four
clients follow the same job at once:

* hint: polls the default API, waiting `poll_after_seconds` (else `Retry-After`) between polls;
* retry_after: the default API, the `Retry-After` header only (whole seconds);
* hint_calibrated: a second API process whose STT_POLL_RTF is the real-time factor measured
  here, following `poll_after_seconds`;
* long_poll: the default API with `?wait=20` (held until the job changes, where the API
  supports it; else it falls back to the hint);
* ideal: told by Redis (keyspace notifications) the moment the record turns terminal (the
  lower bound of any polling client; it does not poll, so it takes no CPU from the worker);
* guide_3s, guide_2s: the integration guide's own client as written (`bench.guide_client`: a
  fixed 3 s sleep between polls, 2 s in the guide's table for short audio, hints ignored);
  guide_3s_no_hold: the same against a third API process without the poll hold window
  (STT_POLL_HOLD_SECONDS=0), which is what that client paid before it.

The ratio end-to-end / bare of each repeat is taken within that repeat; the figures quoted are
medians over repeats.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from faster_whisper import WhisperModel

from bench import jobs
from bench.guide_client import GUIDE_SHORT_AUDIO_WAIT_SECONDS, GUIDE_WAIT_SECONDS, get_stt_result
from bench.media import make_speech, short_clip
from bench.stack import Bench, ModelConfig
from stt_api import polling
from stt_common.messages import JobRecord, JobStatus
from stt_testing import processes, speech
from stt_transcriber.decode import decode

CLIENTS = (
    "hint", "retry_after", "hint_calibrated", "long_poll", "guide_3s", "guide_2s",
    "guide_3s_no_hold",
)
GUIDE_CLIENTS = {
    "guide_3s": GUIDE_WAIT_SECONDS,
    "guide_2s": GUIDE_SHORT_AUDIO_WAIT_SECONDS,
    "guide_3s_no_hold": GUIDE_WAIT_SECONDS,  # against an API with STT_POLL_HOLD_SECONDS=0
}


class Bare:
    """faster-whisper in this process, called exactly as the worker's engine calls it."""

    def __init__(self, model: ModelConfig) -> None:
        self.config = model
        started = time.perf_counter()
        self.model = WhisperModel(
            model.path,
            device=model.device,
            compute_type=model.compute_type,
            cpu_threads=model.cpu_threads,
        )
        self.load_seconds = time.perf_counter() - started

    def transcribe(self, path: Path, language: str = "en") -> tuple[float, str]:
        started = time.perf_counter()
        segments, _info = self.model.transcribe(
            str(path),
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            vad_parameters={
                "threshold": self.config.vad_threshold,
                "speech_pad_ms": self.config.vad_pad_ms,
            },
            condition_on_previous_text=self.config.condition_on_previous_text,
        )
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        return time.perf_counter() - started, text


def decode_seconds(path: Path, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        decode(path, 4 * 3600)
        times.append(time.perf_counter() - started)
    return jobs.median(times)


async def one_job(
    bench: Bench,
    tap: jobs.ResultsTap,
    redis: Any,
    default_api: str,
    calibrated_api: str,
    path: Path,
    timeout: float,
    no_hold_api: str | None = None,
) -> tuple[str, jobs.Timeline]:
    rid = "ovh-" + uuid.uuid4().hex[:12]
    url = bench.media_url(path)
    async with httpx.AsyncClient(base_url=default_api, timeout=10) as http:
        t0, t1, first = await jobs.submit(http, rid, url)
    watcher = asyncio.create_task(jobs.watch_redis(redis, rid))
    apis = {
        "hint": default_api, "retry_after": default_api, "hint_calibrated": calibrated_api,
        "long_poll": default_api,
    }
    modes = {"hint": "hint", "retry_after": "retry_after", "hint_calibrated": "hint",
             "long_poll": "wait"}
    outcomes = await asyncio.gather(
        *(
            guide(
                no_hold_api or default_api if c.endswith("no_hold") else default_api,
                url, rid, GUIDE_CLIENTS[c],
            )
            if c in GUIDE_CLIENTS
            else jobs.poll_until_done(apis[c], rid, modes[c], first, timeout)
            for c in CLIENTS
        )
    )
    in_redis = await watcher
    await tap.wait_completed({rid}, 30)
    for outcome in outcomes:
        if outcome.status != "COMPLETED":
            raise RuntimeError(f"job {rid} ended {outcome.status}: {outcome.body}")
    clients = dict(zip(CLIENTS, outcomes, strict=True))
    return rid, jobs.timeline(tap, rid, t0, t1, in_redis, clients)


async def guide(api_url: str, media_url: str, rid: str, wait_time: float) -> jobs.PollOutcome:
    """The guide's client on the job just submitted (its own submit of the same request_id is
    answered with the job's status: the guide's idempotency)."""
    polls: list[float] = []
    text = await asyncio.to_thread(
        get_stt_result, media_url, rid, processes.API_KEY, api_url, wait_time, polls
    )
    status = "COMPLETED" if text is not None else "FAILED"
    return jobs.PollOutcome(polls[-1] if polls else time.time(), len(polls), status,
                            {"transcription": text})


# ---- polling policies, replayed on the job's real timeline -----------------------------------
#
# What a client following a given hint policy would have seen, replayed on the record states the
# job actually went through (each event visible in Redis at its emitted_at plus the measured
# projection delay). "shipped" replays `stt_api.polling.poll_after` and checks the replay
# against the measured clients; the others are proposals for the service.

Policy = Any


def states_of(tap: jobs.ResultsTap, run: jobs.Timeline, rid: str) -> list[tuple[float, Any]]:
    lag = run.in_redis - run.result_emitted  # publish + projection, as measured for this job
    states: list[tuple[float, Any]] = [
        (run.t_accepted, JobRecord(request_id=rid, status=JobStatus.PROCESSING, stage="queued",
                                   updated_at=jobs.utc(run.t_submit)))
    ]
    for _received, event in tap.events.get(rid, []):
        if event.status is JobStatus.PROCESSING:
            states.append((event.emitted_at.timestamp() + lag, JobRecord.from_result(event)))
    final = JobRecord(request_id=rid, status=JobStatus.COMPLETED, updated_at=jobs.utc(run.in_redis))
    states.append((run.in_redis, final))
    return sorted(states, key=lambda s: s[0])


def replay(states: list[tuple[float, Any]], start: float, policy: Policy) -> tuple[float, int]:
    """When a client polling by `policy` first sees the job done, and how many polls it made.

    The policy gets the record visible at that moment, the time, and when the record first
    showed `transcribing` (None before).
    """

    def at(t: float) -> tuple[Any, float | None]:
        seen, began = states[0][1], None
        for visible, record in states:
            if visible <= t:
                seen = record
                if began is None and record.stage == "transcribing":
                    began = record.updated_at.timestamp()
        return seen, began

    t, polls = start, 0
    wait = policy(*at(t), t)
    while polls < 10_000:
        t += wait
        polls += 1
        record, began = at(t)
        if record.status is not JobStatus.PROCESSING:
            return t, polls
        wait = policy(record, began, t)
    raise RuntimeError("replay did not end")


def shipped(rtf: float) -> Policy:
    """The service's own hint, whichever version of `stt_api.polling` is installed."""
    advisor_class = getattr(polling, "PollAdvisor", None)

    def policy(record: Any, _began: float | None, now: float) -> float:
        if advisor_class is not None:  # a fresh advisor: not yet calibrated by completed jobs
            return float(advisor_class(rtf).poll_after(record, now=jobs.utc(now)) or 0.0)
        return float(polling.poll_after(record, rtf) or 0.0)  # type: ignore[attr-defined]

    return policy


def since_update(rtf: float, floor: float = 0.2) -> Policy:
    """Proposal A: the shipped estimate minus the age of the record, floored at `floor`."""

    def policy(record: Any, _began: float | None, now: float) -> float:
        if not record.duration or record.progress is None:
            return 0.5
        remaining = record.duration * (1.0 - min(1.0, max(0.0, record.progress))) * rtf
        remaining -= now - record.updated_at.timestamp()
        return float(min(polling.MAX_SECONDS, max(floor, remaining)))

    return policy


def since_start(rtf: float, floor: float) -> Policy:
    """Proposal B: `duration × rtf` minus the time since transcription began (the record would
    keep that moment), floored at `floor`; 0.5 s while queued or downloading."""

    def policy(record: Any, began: float | None, now: float) -> float:
        if not record.duration or began is None:
            return 0.5
        remaining = record.duration * rtf - (now - began)
        return float(min(polling.MAX_SECONDS, max(floor, remaining)))

    return policy


def summarise(
    label: str, seconds: float, bare: list[float], runs: list[jobs.Timeline], decode_s: float,
    texts: list[tuple[str, str]], reference: str, states: list[list[tuple[float, Any]]],
    calibrated_rtf: float,
) -> dict[str, Any]:
    ratios = {
        client: [t.end_to_end(client) / b for t, b in zip(runs, bare, strict=True)]
        for client in CLIENTS
    }
    ratios["ideal"] = [t.end_to_end() / b for t, b in zip(runs, bare, strict=True)]
    stage_names = list(runs[0].stages(decode_s))
    stages = {
        name: round(jobs.median([t.stages(decode_s)[name] for t in runs]), 3)
        for name in stage_names
    }
    for client in CLIENTS:
        stages[f"polling_delay_{client}"] = round(
            jobs.median([t.polling_delay(client) for t in runs]), 3
        )
    policies = {
        "shipped (STT_POLL_RTF default)": shipped(polling.DEFAULT_RTF),
        "shipped, STT_POLL_RTF calibrated": shipped(calibrated_rtf),
        "A: calibrated, minus the record's age, 0.2 s floor": since_update(calibrated_rtf),
        "B: calibrated, from transcription start, 0.2 s floor": since_start(calibrated_rtf, 0.2),
        "B with a 0.1 s floor": since_start(calibrated_rtf, 0.1),
    }
    replays: dict[str, dict[str, float]] = {}
    for name, policy in policies.items():
        outcomes = [replay(states[i], runs[i].t_accepted, policy) for i in range(len(runs))]
        triples = zip(outcomes, runs, bare, strict=True)
        replays[name] = {
            "ratio": round(jobs.median([(d - r.t_submit) / b for (d, _), r, b in triples]), 3),
            "polling_delay_s": round(jobs.median([
                done - r.in_redis for (done, _), r in zip(outcomes, runs, strict=True)
            ]), 3),
            "polls": round(jobs.median([n for _, n in outcomes]), 1),
        }
    worker_wer = [speech.wer(b, w) for b, w in texts]
    reference_wer = [speech.wer(reference, b) for b, _ in texts]
    return {
        "file": label,
        "audio_seconds": seconds,
        "repeats": len(runs),
        "bare_seconds": round(jobs.median(bare), 3),
        "bare_rtf": round(jobs.median(bare) / seconds, 4),
        "worker_processing_seconds": round(jobs.median([t.processing_time for t in runs]), 3),
        "end_to_end_seconds": {
            client: round(jobs.median([t.end_to_end(client) for t in runs]), 3)
            for client in CLIENTS
        }
        | {"ideal": round(jobs.median([t.end_to_end() for t in runs]), 3)},
        "ratio": {client: round(jobs.median(values), 3) for client, values in ratios.items()},
        # The spread of the per-repeat ratios: on shared cores it is wider than any overhead.
        "ratio_quartiles": {
            client: [round(q, 3) for q in statistics.quantiles(values, n=4)[::2]]
            for client, values in ratios.items()
            if len(values) >= 2
        },
        "ratio_runs": {client: [round(v, 3) for v in values] for client, values in ratios.items()},
        "polls": {
            client: round(jobs.median([t.clients[client].polls for t in runs]), 1)
            for client in CLIENTS
        },
        "stages_seconds": stages,
        "decode_seconds": round(decode_s, 3),
        "wer_worker_vs_bare": round(max(worker_wer), 4),
        "wer_bare_vs_reference": round(jobs.median(reference_wer), 4),
        "replayed_policies": replays,
    }


async def run(bench: Bench) -> dict[str, Any]:
    files = [("60 s", 60.0, 2 if bench.quick else 15)]
    if not bench.quick:
        files.append(("10 min", 600.0, 2))
    speeches = {label: make_speech(seconds, bench.cache) for label, seconds, _ in files}
    warm = short_clip(bench.cache)

    bare = await asyncio.to_thread(Bare, bench.model)
    await asyncio.to_thread(bare.transcribe, warm.path)  # first-call allocations
    calib_s, _ = await asyncio.to_thread(bare.transcribe, speeches["60 s"].path)
    measured_rtf = round(calib_s / 60.0, 3)

    env = bench.env()
    default_api = bench.api(env, name="api-default")
    calibrated_api = bench.api(env | {"STT_POLL_RTF": str(measured_rtf)}, name="api-calibrated")
    no_hold_api = bench.api(env | {"STT_POLL_HOLD_SECONDS": "0"}, name="api-no-hold")
    bench.projector(env)
    bench.transcribers(env, 1)
    redis = jobs.redis_client(env)
    out: dict[str, Any] = {
        "measured_rtf_for_calibration": measured_rtf,
        "bare_model_load_seconds": round(bare.load_seconds, 3),
        "files": [],
    }
    try:
        async with jobs.ResultsTap(env) as tap:
            await one_job(bench, tap, redis, default_api.url, calibrated_api.url, warm.path, 120,
                          no_hold_api.url)
            for label, seconds, repeats in files:
                path = speeches[label].path
                decode_s = await asyncio.to_thread(decode_seconds, path)
                bare_times: list[float] = []
                runs: list[jobs.Timeline] = []
                texts: list[tuple[str, str]] = []
                states: list[list[tuple[float, Any]]] = []
                for repeat in range(repeats):
                    # Bare first in even repeats, second in odd ones: a drift in the machine's
                    # speed over the scenario then favours neither side.
                    if repeat % 2 == 0:
                        bare_s, bare_text = await asyncio.to_thread(bare.transcribe, path)
                    rid, run_ = await one_job(
                        bench, tap, redis, default_api.url, calibrated_api.url, path,
                        timeout=max(120.0, seconds), no_hold_api=no_hold_api.url,
                    )
                    if repeat % 2 == 1:
                        bare_s, bare_text = await asyncio.to_thread(bare.transcribe, path)
                    bare_times.append(bare_s)
                    runs.append(run_)
                    states.append(states_of(tap, run_, rid))
                    texts.append((bare_text, run_.clients["hint"].body.get("transcription", "")))
                    print(
                        f"  overhead {label}: bare {bare_s:.2f}s, end-to-end "
                        + ", ".join(f"{c} {run_.end_to_end(c):.2f}s" for c in CLIENTS)
                        + f", ideal {run_.end_to_end():.2f}s",
                        flush=True,
                    )
                out["files"].append(
                    summarise(
                        label, seconds, bare_times, runs, decode_s, texts, speeches[label].text,
                        states, measured_rtf,
                    )
                )
    finally:
        await redis.aclose()
        bench.stop_all()
    first = out["files"][0]
    out["overhead_ratio"] = first["ratio"]["hint"]
    out["overhead_ratio_ideal"] = first["ratio"]["ideal"]
    out["overhead_ratio_calibrated"] = first["ratio"]["hint_calibrated"]
    out["overhead_ratio_long_poll"] = first["ratio"]["long_poll"]
    out["overhead_ratio_guide"] = first["ratio"]["guide_3s"]
    out["overhead_ratio_guide_no_hold"] = first["ratio"]["guide_3s_no_hold"]
    out["hint_policy"] = " ".join((polling.__doc__ or "").split("\n\n")[1:2]).replace("\n", " ")
    return out
