"""In-process stand-ins for the brokers, for the fast tier (`make test-fast`).

Only the clients are faked: the product code under test (routes, guard, job store and its Lua
ordering rule on fakeredis, the transcriber's consume loop) is the real one. Every behaviour a
fake stands in for is also proven against the real servers in the `infra` tier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import fakeredis
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord, TopicPartition
from fastapi import FastAPI

from stt_api.app import create_app
from stt_api.auth import accepted
from stt_api.deps import Wiring
from stt_api.long_poll import LongPolls
from stt_api.media_store import MediaStore
from stt_api.openai_format import served_model_id
from stt_api.polling import PollAdvisor
from stt_api.rate_limit import RateLimiter
from stt_api.submit_events import PublishRefused, PublishUnknown
from stt_api.upload_slots import UploadSlots
from stt_common.job_store import JobStore
from stt_common.messages import SubmitEvent
from stt_common.settings import KafkaSettings, Settings
from stt_common.store_epoch import epoch_key
from stt_common.tracing import TraceContext


@dataclass
class FakeSubmitPublisher:
    """`stt_api.submit_events.SubmitPublisher` without Kafka: what was published, in order."""

    published: list[tuple[SubmitEvent, TraceContext | None]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    refuse: bool = False  # True: every send fails as a Kafka outage would
    unknown: bool = False  # True: every send times out unacknowledged (and is never delivered)
    started: bool = True
    settings: KafkaSettings = field(default_factory=KafkaSettings)

    async def start(self) -> None:
        self.started = True

    async def publish(self, event: SubmitEvent, trace: TraceContext | None = None) -> None:
        if self.refuse:
            raise PublishRefused("Kafka refused the job: KafkaConnectionError")
        if self.unknown:
            raise PublishUnknown("Kafka did not acknowledge the job within 3s")
        self.published.append((event, trace))

    async def forget(self, request_id: str) -> None:
        if self.refuse:
            raise PublishRefused("Kafka refused the job: KafkaConnectionError")
        self.forgotten.append(request_id)

    async def close(self) -> None:
        self.started = False


@dataclass
class InProcessApi:
    app: FastAPI
    wiring: Wiring
    redis: fakeredis.FakeAsyncRedis
    publisher: FakeSubmitPublisher


def in_process_api(settings: Settings) -> InProcessApi:
    """`create_app(settings)` wired to fakeredis and a fake publisher, without its lifespan
    (which would connect to the real servers): drive it with `httpx.ASGITransport`."""
    app = create_app(settings)
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    # The store is complete (as a projector would have marked it): unknown jobs are 404.
    marker = epoch_key(settings.kafka.topic_status)
    fakeredis.FakeRedis(server=server).hset(marker, mapping={"state": "ready"})
    store = JobStore(redis, settings.redis.job_ttl)
    publisher = FakeSubmitPublisher(settings=settings.kafka)
    wiring = Wiring(
        settings=settings,
        job_store=store,
        publisher=publisher,  # type: ignore[arg-type]
        long_polls=LongPolls(store),
        poll_advisor=PollAdvisor(settings.api.poll_rtf, settings.api.poll_hold_seconds),
        media_store=MediaStore(settings.minio),
        upload_slots=UploadSlots(settings.api.uploads_per_key, settings.api.uploads_max_active),
        rate_limiter=RateLimiter(redis, settings.api.rate_limit_per_minute),
        api_keys=accepted(settings.api),
        served_model=served_model_id(settings.model.model),
    )
    app.state.wiring = wiring
    return InProcessApi(app, wiring, redis, publisher)


def consumer_record(
    tp: TopicPartition, offset: int, value: bytes, key: bytes | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=[],
    )


class FakeConsumer:
    """The part of `AIOKafkaConsumer` the consume loops use, over in-memory partition logs.

    Honours pause/resume/seek like the real one: a paused partition yields nothing, a seek makes
    the next fetch start at that offset; one fetch returns up to `max_records` records over
    several partitions, as aiokafka does. Sets `stop` once a fetch finds nothing left to read, so
    a loop under test runs until it has drained what the test put in. `revoke` plays a
    rebalance that takes partitions away (through the subscribed listener)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.stop = stop
        self.fetches = 0
        self.listener: Any = None
        self.lost: set[TopicPartition] = set()  # revoked by `revoke`
        self.refuse_commits: Exception | None = None
        self.refuse_end_offsets: Exception | None = None

    def append(self, tp: TopicPartition, value: bytes) -> ConsumerRecord[bytes, bytes]:
        log = self.logs.setdefault(tp, [])
        self.positions.setdefault(tp, 0)
        record = consumer_record(tp, len(log), value)
        log.append(record)
        return record

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.topics = topics
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs) - self.lost

    async def revoke(self, *tps: TopicPartition) -> None:
        if self.listener is not None:
            await self.listener.on_partitions_revoked(list(tps))
        self.lost.update(tps)

    async def assign_back(self, *tps: TopicPartition) -> None:
        self.lost.difference_update(tps)
        if self.listener is not None:
            await self.listener.on_partitions_assigned(list(tps))

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.refuse_end_offsets is not None:
            raise self.refuse_end_offsets
        return {tp: len(self.logs.get(tp, [])) for tp in tps}

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.fetches += 1
        await asyncio.sleep(0)
        ready: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        room = max_records or 1_000_000
        for tp in sorted(self.assignment()):
            if tp in self.paused or room <= 0:
                continue
            start = self.positions[tp]
            batch = self.logs[tp][start : start + room]
            if batch:
                self.positions[tp] = batch[-1].offset + 1
                ready[tp] = batch
                room -= len(batch)
        if ready:
            return ready
        if timeout_ms:  # a real poll of an idle consumer: the test's records are all handled
            self.stop.set()
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits is not None:
            raise self.refuse_commits
        self.committed.update(offsets)


@dataclass
class Sent:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]] | None


class FakeProducer:
    """`stt_common.publisher.Publisher.send_and_wait` into a list; `fail_topics` refuse."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.fail_topics: set[str] = set()
        self.refused = 0  # sends refused through `fail_topics` so far
        self.max_request_size = 1048576  # aiokafka's default

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        if topic in self.fail_topics:
            self.refused += 1
            raise KafkaConnectionError(f"fake: {topic} unreachable")
        # aiokafka's own check, before anything is sent (AIOKafkaProducer._serialize).
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(f"fake: {size} bytes over max_request_size")
        self.sent.append(Sent(topic, value, key, headers))

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]
