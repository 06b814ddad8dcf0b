"""The projector process against real Kafka and Redis: upstream events become pollable states."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stt_common.job_store import JobStore, job_key
from stt_common.messages import JobRecord, JobStatus, ResultEvent, SubmitEvent
from stt_testing import kafka_tools, processes

pytestmark = pytest.mark.infra
TTL = 3600


@pytest.fixture(scope="module")
def env(infra: Any) -> dict[str, str]:
    return processes.service_env(
        infra.env(), prefix="proj" + uuid.uuid4().hex[:6], REDIS_JOB_TTL=str(TTL)
    )


@pytest.fixture(scope="module")
def projector(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Service]:
    service = processes.worker("projector", env, tmp_path_factory.mktemp("projector")).start()
    service.wait_for_log("projector ready")
    yield service
    service.stop()


@pytest.fixture
async def producer(env: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def store(infra: Any) -> AsyncIterator[JobStore]:
    redis = Redis(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    yield JobStore(redis, TTL)
    await redis.aclose()


async def publish(producer: AIOKafkaProducer, topic: str, rid: str, value: bytes) -> None:
    await producer.send_and_wait(topic, value, key=rid.encode())


async def wait_for(store: JobStore, rid: str, status: JobStatus, timeout: float = 20) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = await store.get(rid)
        if record is not None and record.status is status:
            return record
        await asyncio.sleep(0.2)
    raise AssertionError(f"{rid} never reached {status} (last: {await store.get(rid)})")


async def test_upstream_submit_then_results_are_projected_in_order(
    projector: processes.Service, producer: AIOKafkaProducer, store: JobStore, env: dict[str, str]
) -> None:
    rid = "up-" + uuid.uuid4().hex[:8]
    submit = SubmitEvent(request_id=rid, media_url="s3://bucket/a.mp3", language="en")
    await publish(producer, env["KAFKA_TOPIC_SUBMIT"], rid, submit.model_dump_json().encode())
    queued = await wait_for(store, rid, JobStatus.PROCESSING)
    assert queued.media_url == "s3://bucket/a.mp3" and queued.stage == "queued"

    done = ResultEvent(request_id=rid, status=JobStatus.COMPLETED, transcription="hello world")
    late = ResultEvent(
        request_id=rid,
        status=JobStatus.PROCESSING,
        stage="transcribing",
        emitted_at=done.emitted_at + timedelta(seconds=1),
    )
    for event in (done, late):
        await publish(producer, env["KAFKA_TOPIC_RESULTS"], rid, event.model_dump_json().encode())
    await wait_for(store, rid, JobStatus.COMPLETED)
    await asyncio.sleep(1.0)  # give the late PROCESSING time to be (wrongly) applied
    final = await store.get(rid)
    assert final is not None and final.status is JobStatus.COMPLETED
    assert final.transcription == "hello world"


async def test_a_poison_result_goes_to_the_dead_letter_topic_and_the_next_one_lands(
    projector: processes.Service, producer: AIOKafkaProducer, store: JobStore, env: dict[str, str]
) -> None:
    rid = "poison-" + uuid.uuid4().hex[:8]
    await publish(producer, env["KAFKA_TOPIC_RESULTS"], rid, b"{not json")
    ok = ResultEvent(request_id=rid + "-ok", status=JobStatus.COMPLETED, transcription="ok")
    await publish(
        producer, env["KAFKA_TOPIC_RESULTS"], ok.request_id, ok.model_dump_json().encode()
    )
    await wait_for(store, ok.request_id, JobStatus.COMPLETED)
    dead = await read_topic(env, env["KAFKA_TOPIC_DLQ"], rid)
    assert dead, "poison event not dead-lettered"
    headers = dict(dead[0].headers)
    assert headers["stt-origin-topic"] == env["KAFKA_TOPIC_RESULTS"].encode()
    assert headers["stt-error-type"] == b"poison_event"
    assert headers["stt-consumer-group"] == env["KAFKA_PROJECTOR_GROUP"].encode()


async def test_submit_topic_poison_is_skipped_here_the_transcriber_dead_letters_it(
    projector: processes.Service, producer: AIOKafkaProducer, store: JobStore, env: dict[str, str]
) -> None:
    """Issue 13 item 8: one dead letter per poison event; the transcriber group owns the submit
    topic's (tests/faults/test_poison.py). A `not_before` on the submit topic is invalid too."""
    rid = "poison-" + uuid.uuid4().hex[:8]
    waits = SubmitEvent(request_id=rid + "-wait", media_url="http://h/a.mp3").model_copy(
        update={"not_before": datetime(2099, 1, 1, tzinfo=UTC)}
    )
    await publish(producer, env["KAFKA_TOPIC_SUBMIT"], rid, b"{not json")
    await publish(
        producer, env["KAFKA_TOPIC_SUBMIT"], waits.request_id, waits.model_dump_json().encode()
    )
    ok = SubmitEvent(request_id=rid + "-ok", media_url="http://h/a.mp3")
    await publish(producer, env["KAFKA_TOPIC_SUBMIT"], ok.request_id, ok.model_dump_json().encode())
    await wait_for(store, ok.request_id, JobStatus.PROCESSING)
    assert await store.get(waits.request_id) is None
    assert not await read_topic(env, env["KAFKA_TOPIC_DLQ"], rid, wait=2)


async def test_rebuild_restores_every_job_with_its_own_expiry(
    projector: processes.Service,
    producer: AIOKafkaProducer,
    store: JobStore,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    finished = datetime.now(UTC) - timedelta(seconds=600)
    rids = [f"rb-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
    for rid in rids:
        event = ResultEvent(
            request_id=rid, status=JobStatus.COMPLETED, transcription=rid, emitted_at=finished
        )
        await publish(producer, env["KAFKA_TOPIC_RESULTS"], rid, event.model_dump_json().encode())
    for rid in rids:
        await wait_for(store, rid, JobStatus.COMPLETED)
    await store.redis.delete(*(job_key(r) for r in rids))

    done = subprocess.run(
        [*processes.STT, "projector", "--rebuild"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    for rid in rids:
        record = await store.get(rid)
        assert record is not None and record.transcription == rid, rid
        ttl = await store.redis.ttl(job_key(rid))
        assert TTL - 600 - 30 <= ttl <= TTL - 600, ttl


async def read_topic(env: dict[str, str], topic: str, rid: str, wait: float = 5) -> list[Any]:
    return await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], topic, {rid}, wait=wait, until=1
    )
