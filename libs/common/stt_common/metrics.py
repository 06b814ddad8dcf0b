"""Every Prometheus metric of the system, named `stt_*`, and the helpers that feed them.

The API serves them at `/metrics`; the transcriber and projector start their own HTTP server on
`STT_METRICS_PORT` (0 = off). Each process only moves the metrics of its own role, so a metric that
belongs to another role reads 0 there. With `stt api --workers N` the worker processes keep their
counts in files of one directory (`shared_between_processes`, prometheus_client's multiprocess
mode), so whichever worker answers `/metrics` reports the sum of all of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

from stt_common.messages import JobStatus, ResultEvent

log = logging.getLogger(__name__)
LAG_EVERY = 5.0  # seconds between consumer-lag updates
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when first imported
_DURATIONS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)

# ---- API ----
JOBS_SUBMITTED = Counter("stt_jobs_submitted", "Jobs accepted by the API (new request_ids)")
HTTP_REQUESTS = Counter(
    "stt_http_requests", "HTTP requests answered by the API", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "stt_http_request_seconds", "Time the API took to answer", ["method", "route"]
)
# Set on each scrape of /metrics (a ping with a short timeout): alerts need no /ready prober.
DEPENDENCY_UP = Gauge(
    "stt_dependency_up",
    "1 when the API reached the dependency at the last scrape",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)

# ---- transcriber ----
JOBS_COMPLETED = Counter("stt_jobs_completed", "Jobs transcribed successfully")
JOBS_FAILED = Counter("stt_jobs_failed", "Jobs that ended FAILED, by error_type", ["reason"])
JOB_PROCESSING_SECONDS = Histogram(
    "stt_job_processing_seconds", "Pickup to outcome of one job attempt", buckets=_DURATIONS
)
JOB_QUEUE_SECONDS = Histogram(
    "stt_job_queue_seconds", "Submission to first pickup (queue wait)", buckets=_DURATIONS
)
AUDIO_SECONDS = Counter("stt_audio_seconds", "Seconds of audio transcribed")
MODEL_LOAD_SECONDS = Gauge("stt_model_load_seconds", "Time the model took to load at start")
BATCH_JOBS = Histogram(
    "stt_batch_jobs",
    "Jobs per cross-job batched model call (STT_CROSS_JOB_BATCH > 1)",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)

# ---- transcriber and projector ----
CONSUMER_LAG = Gauge(
    "stt_consumer_lag", "Records not yet consumed by this member", ["topic", "partition"]
)
EVENTS_PROJECTED = Counter(
    "stt_events_projected", "Events handled by the projector, by outcome", ["outcome"]
)
LANE_LAG = Gauge(
    "stt_lane_lag",
    "Records waiting in each priority lane on this transcriber's partitions (from the broker)",
    ["lane"],
)
LANE_SECONDS = Counter(
    "stt_lane_seconds", "Seconds this transcriber spent on each priority lane's jobs", ["lane"]
)

# ---- webhooks ----
WEBHOOK_DELIVERIES = Counter(
    "stt_webhook_deliveries",
    "Webhook deliveries ended, by outcome (delivered, dead_lettered, skipped)",
    ["outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "stt_webhook_attempts",
    "Webhook POSTs tried, by result (2xx, 4xx, 5xx, error, refused)",
    ["result"],
)
WEBHOOKS_PENDING = Gauge(
    "stt_webhooks_pending", "Deliveries held (in progress or waiting to retry)"
)


WEBHOOK_OUTCOMES = ("delivered", "dead_lettered", "skipped")


def start_at_zero(counter: Counter, values: Iterable[str]) -> None:
    """Export `counter{label=value} 0` for each value before the first event: a series born at
    1 has no earlier sample, so `increase()`/`rate()` (and the alerts built on them) would miss
    the first failure of its kind."""
    for value in values:
        counter.labels(value)


@contextmanager
def shared_between_processes() -> Iterator[None]:
    """Around starting worker processes that each import this module afresh (uvicorn's
    `--workers`): they count into files of one new directory, removed afterwards. A directory the
    operator already set in PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="stt-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_ENV]


def exposition() -> bytes:
    """The Prometheus text of this process, or of all worker processes in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def serve(port: int, host: str = "0.0.0.0") -> bool:
    """Start the metrics HTTP server of a worker process; port 0 leaves it off."""
    if port <= 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:  # metrics are not worth stopping the work for
        log.error("metrics server not started on %s:%d: %s", host, port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True


class LagReporter:
    """Sets `stt_consumer_lag` from the consumer's highwater marks, at most every LAG_EVERY s."""

    def __init__(self, consumer: AIOKafkaConsumer, every: float = LAG_EVERY) -> None:
        self.consumer = consumer
        self.every = every
        self._last = -every
        self._labelled: set[tuple[str, str]] = set()

    async def maybe_update(self) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        try:
            await self.update()
        except Exception as exc:  # metrics must never stop the work
            log.debug("consumer lag not updated: %s", exc)

    async def update(self) -> None:
        current: set[tuple[str, str]] = set()
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(self.consumer.position(tp), 0.5)
            except Exception:  # a timeout included: the position is being reset
                continue
            labels = (tp.topic, str(tp.partition))
            CONSUMER_LAG.labels(*labels).set(max(0, highwater - position))
            current.add(labels)
        for gone in self._labelled - current:  # partitions moved to another member
            CONSUMER_LAG.remove(*gone)
        self._labelled = current


def job_picked_up(submitted_at: datetime, attempt: int) -> None:
    """Queue wait of a job's first attempt (retries wait on purpose; they are not counted)."""
    if attempt == 1:
        JOB_QUEUE_SECONDS.observe(max(0.0, (datetime.now(UTC) - submitted_at).total_seconds()))


def job_finished(result: ResultEvent, seconds: float) -> None:
    """A job's outcome, once published."""
    JOB_PROCESSING_SECONDS.observe(seconds)
    if result.status is JobStatus.COMPLETED:
        JOBS_COMPLETED.inc()
        AUDIO_SECONDS.inc(result.duration or 0.0)
    elif result.status is JobStatus.FAILED:
        JOBS_FAILED.labels(result.error_type or "failed").inc()
