"""Following jobs through the system: submit, poll clients, a Redis watcher, a results-topic tap.

All times are wall-clock seconds (`time.time()`), the clock the services stamp their events
with (`emitted_at`, `submitted_at`); every process runs on this one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from redis.asyncio import Redis

from stt_common.job_store import job_key
from stt_common.messages import JobStatus, ResultEvent
from stt_testing import processes

HEADERS = {"X-API-Key": processes.API_KEY}
LONG_POLL_SECONDS = 20
TERMINAL = ("COMPLETED", "FAILED")


def redis_client(env: dict[str, str]) -> Redis:
    return Redis(
        host=env["REDIS_HOST"],
        port=int(env["REDIS_PORT"]),
        password=env.get("REDIS_PASSWORD") or None,
    )


class ResultsTap:
    """Reads every event on the results topic from now on, with the time it was received."""

    def __init__(self, env: dict[str, str]) -> None:
        self.topic = env["KAFKA_TOPIC_RESULTS"]
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            group_id=None,
            enable_auto_commit=False,
            # A fetch returns as soon as a record arrives; the wait only bounds an idle one.
            fetch_max_wait_ms=500,
        )
        self.events: dict[str, list[tuple[float, ResultEvent]]] = {}
        self.completed: dict[str, float] = {}  # request_id -> emitted_at of its terminal event
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ResultsTap:
        await self.consumer.start()
        deadline = time.monotonic() + 30
        while True:
            parts = self.consumer.partitions_for_topic(self.topic)
            if parts:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {self.topic} never appeared")
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, so nothing published after this is missed
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue
                    event = ResultEvent.model_validate_json(record.value)
                    self.events.setdefault(event.request_id, []).append((now, event))
                    if event.status in (JobStatus.COMPLETED, JobStatus.FAILED):
                        self.completed.setdefault(event.request_id, event.emitted_at.timestamp())
            if batches:
                self._changed.set()

    async def wait_completed(self, ids: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.completed):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = len(ids - set(self.completed))
                raise TimeoutError(f"{missing} of {len(ids)} jobs never completed")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))


async def watch_redis(redis: Redis, request_id: str) -> float:
    """The moment the job turned terminal in Redis: an ideal, zero-delay poller that costs
    nothing while it waits. It is told of every change to the job's key (keyspace
    notifications, switched on here), so it does not poll; a busy poller would take CPU from
    the worker it is timing."""
    key = job_key(request_id)
    await redis.config_set("notify-keyspace-events", "Kh")
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"__keyspace@{db}__:{key}")
    try:
        changed = time.time()
        while True:
            if await redis.hget(key, "phase") == b"2":
                return changed
            # Any change to the key (or a second's timeout, in case one was missed)...
            while await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is None:
                if await redis.hget(key, "phase") == b"2":
                    return time.time()
            changed = time.time()
    finally:
        await pubsub.aclose()


async def submit(
    http: httpx.AsyncClient, request_id: str, media_url: str, language: str = "en"
) -> tuple[float, float, httpx.Response]:
    t0 = time.time()
    body = {"request_id": request_id, "media_url": media_url, "language": language}
    response = await http.post("/api/v1/transcribe", json=body, headers=HEADERS)
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
    return t0, time.time(), response


def hint_seconds(response: httpx.Response, mode: str) -> float:
    """How long a client waits before polling again, by client kind.

    hint: `poll_after_seconds` from the body (0.05 s steps), else the `Retry-After` header;
    retry_after: the header only (whole seconds); fixed: always 1 s, like the seed's client;
    wait: long polls (`?wait=`), so no pause unless the answer came back at once.
    """
    if mode == "fixed":
        return 1.0
    if mode in ("hint", "wait"):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            value = response.json().get("poll_after_seconds")
            if value is not None:
                return float(value)
    header = response.headers.get("Retry-After")
    return float(header) if header else 1.0


@dataclass
class PollOutcome:
    done_at: float
    polls: int
    status: str
    body: dict[str, Any] = field(repr=False)


async def poll_until_done(
    base_url: str, request_id: str, mode: str, first: httpx.Response | None, timeout: float
) -> PollOutcome:
    """Polls like a client: waits as the last answer (the submit's, first) tells it to."""
    deadline = time.monotonic() + timeout
    polls = 0
    params = {"wait": str(LONG_POLL_SECONDS)} if mode == "wait" else {}
    quick = True  # the last answer came back at once (so a long poll was not held)
    async with httpx.AsyncClient(
        base_url=base_url, headers=HEADERS, timeout=LONG_POLL_SECONDS + 10
    ) as http:
        last = first
        while time.monotonic() < deadline:
            if last is not None and (mode != "wait" or quick):
                await asyncio.sleep(hint_seconds(last, mode) if mode != "wait" or polls else 0)
            asked = time.monotonic()
            last = await http.get(f"/api/v1/transcribe/{request_id}", params=params)
            quick = time.monotonic() - asked < 0.05
            polls += 1
            if last.status_code == 200 and last.json()["status"] in TERMINAL:
                body = last.json()
                return PollOutcome(time.time(), polls, body["status"], body)
    raise TimeoutError(f"{request_id} not done after {timeout:.0f}s of polling ({mode})")


@dataclass
class Timeline:
    """One job's path, from the client's submit to each client seeing it done."""

    t_submit: float  # the client sends the submit
    t_accepted: float  # the 202 is back
    downloading: float | None  # emitted_at of the worker's "downloading" event
    transcribing: float | None  # emitted_at of "transcribing" (progress 0)
    result_emitted: float  # emitted_at of the final event
    result_received: float  # a results-topic reader had it
    processing_time: float  # the worker's own pickup-to-result time
    in_redis: float  # the ideal poller saw it terminal in Redis
    clients: dict[str, PollOutcome]

    def stages(self, decode_seconds: float = 0.0) -> dict[str, float]:
        """Seconds per stage; sums to the ideal end-to-end time (submit to visible in Redis)."""
        dl = self.downloading or self.t_accepted
        tr = self.transcribing or dl
        inference = self.result_emitted - tr
        return {
            "api_submit": self.t_accepted - self.t_submit,
            "queueing": dl - self.t_accepted,
            "download_probe": tr - dl,
            "decode": min(decode_seconds, inference),
            "model": max(0.0, inference - decode_seconds),
            "result_publish": self.result_received - self.result_emitted,
            "projection": self.in_redis - self.result_received,
        }

    def polling_delay(self, client: str) -> float:
        return self.clients[client].done_at - self.in_redis

    def end_to_end(self, client: str | None = None) -> float:
        done = self.in_redis if client is None else self.clients[client].done_at
        return done - self.t_submit


def timeline(
    tap: ResultsTap,
    request_id: str,
    t_submit: float,
    t_accepted: float,
    in_redis: float,
    clients: dict[str, PollOutcome],
) -> Timeline:
    events = tap.events.get(request_id, [])
    first: dict[str, float] = {}
    final: tuple[float, ResultEvent] | None = None
    for received, event in events:
        if event.status is JobStatus.PROCESSING and event.stage:
            first.setdefault(event.stage, event.emitted_at.timestamp())
        elif event.status in (JobStatus.COMPLETED, JobStatus.FAILED) and final is None:
            final = (received, event)
    if final is None:
        raise RuntimeError(f"no final event of {request_id} on the results topic")
    received, event = final
    return Timeline(
        t_submit=t_submit,
        t_accepted=t_accepted,
        downloading=first.get("downloading"),
        transcribing=first.get("transcribing"),
        result_emitted=event.emitted_at.timestamp(),
        result_received=received,
        processing_time=event.processing_time or 0.0,
        in_redis=in_redis,
        clients=clients,
    )


def utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in points}
    ordered = sorted(values)
    out = {}
    for p in points:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        out[f"p{p}"] = ordered[index]
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
