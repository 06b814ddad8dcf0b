"""One batch through the batch projector, against real Redis and Kafka: each event's fate."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from stt_common import bus, cancellation
from stt_common.job_store import ApplyOutcome, JobStore
from stt_common.messages import JobRecord, JobStatus, ResultEvent, SubmitEvent, utcnow
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_projector.batch import BatchProjector
from stt_testing import kafka_tools

pytestmark = pytest.mark.infra


@pytest.fixture
async def parts(infra: Any) -> AsyncIterator[tuple[BatchProjector, KafkaSettings]]:
    prefix = "batch" + uuid.uuid4().hex[:6]
    settings = KafkaSettings(
        bootstrap_servers=infra.kafka_bootstrap,
        topic_submit=f"{prefix}.submit",
        topic_results=f"{prefix}.results",
        topic_status=f"{prefix}.status",
        topic_dlq=f"{prefix}.dlq",
        retry_delays="",
    )
    await bus.ensure_topics(settings)
    redis = Redis(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    publisher = Publisher(settings)
    await publisher.start()
    yield BatchProjector(settings, JobStore(redis, 3600), publisher), settings
    await publisher.stop()
    await redis.aclose()


def record(topic: str, offset: int, key: str, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, 0, offset, int(time.time() * 1000), 0, key.encode(), value, None, len(key),
        len(value), [],
    )  # fmt: skip


async def test_a_batch_applies_in_order_drops_what_it_must_and_logs_the_held_state(
    parts: tuple[BatchProjector, KafkaSettings],
) -> None:
    projector, settings = parts
    a, b = "a-" + uuid.uuid4().hex[:6], "b-" + uuid.uuid4().hex[:6]
    submitted = utcnow() - timedelta(seconds=5)
    submit = SubmitEvent(request_id=a, media_url="http://h/a.mp3", submitted_at=submitted)
    progress = ResultEvent(request_id=a, status=JobStatus.PROCESSING, stage="transcribing")
    first = ResultEvent(request_id=a, status=JobStatus.COMPLETED, transcription="first")
    second = ResultEvent(request_id=a, status=JobStatus.COMPLETED, transcription="second")
    deleted = ResultEvent(
        request_id=b, status=JobStatus.PROCESSING, stage="downloading", submitted_at=submitted
    )
    await cancellation.mark(projector.store.redis, b, utcnow(), 60)
    results = settings.topic_results
    batch = [
        record(settings.topic_submit, 0, a, submit.model_dump_json().encode()),
        record(results, 1, a, progress.model_dump_json().encode()),
        record(results, 2, a, first.model_dump_json().encode()),
        record(results, 3, a, second.model_dump_json().encode()),  # a second worker's result
        record(results, 4, b, deleted.model_dump_json().encode()),  # its client deleted it
        record(results, 5, a, b"{not json"),
    ]

    outcomes = await projector.project(batch)

    assert outcomes == [ApplyOutcome.APPLIED] * 3 + [ApplyOutcome.SAME, None, None]
    held = await projector.store.get(a)
    assert held is not None and held.transcription == "first"
    assert await projector.store.get(b) is None
    logged = await kafka_tools.keyed_records(settings.bootstrap_servers, settings.topic_status, {a})
    states = [JobRecord.model_validate_json(r.value) for r in logged if r.value]
    assert [s.status for s in states] == ["PROCESSING", "PROCESSING", "COMPLETED", "COMPLETED"]
    assert states[-1].transcription == "first"  # the duplicate is logged as the state held
    dead = await kafka_tools.keyed_records(settings.bootstrap_servers, settings.topic_dlq, {a})
    assert len(dead) == 1 and dict(dead[0].headers)["stt-error-type"] == b"poison_event"

    again = await projector.project(batch)  # a replayed batch changes nothing
    assert again == [ApplyOutcome.STALE] * 2 + [ApplyOutcome.SAME] * 2 + [None, None]
    held_again = await projector.store.get(a)
    assert held_again is not None and held_again.transcription == "first"
