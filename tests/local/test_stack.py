"""The session's Kafka, Redis and S3 answer the way the services use them."""

from __future__ import annotations

import asyncio
import io
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from minio import Minio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError

from stt_local import Stack, StackConfig, free_ports
from stt_testing.infra import Infra, cache_dir

pytestmark = pytest.mark.infra


async def _roundtrip(bootstrap: str, topic: str, value: bytes, create: bool = True) -> bytes:
    if create:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    value = message.value
    assert isinstance(value, bytes)
    return value


async def test_kafka_topic_produce_consume(infra: Infra) -> None:
    topic = f"local-test-{uuid.uuid4().hex[:8]}"
    assert await _roundtrip(infra.kafka_bootstrap, topic, b"hello kafka") == b"hello kafka"


async def test_redis_password(infra: Infra) -> None:
    good = aioredis.Redis(
        host=infra.redis_host, port=infra.redis_port, password=infra.redis_password
    )
    try:
        assert await good.ping() is True
    finally:
        await good.aclose()
    if not infra.redis_password:
        pytest.skip("this Redis has no password")
    bad = aioredis.Redis(
        host=infra.redis_host, port=infra.redis_port, password="wrong", retry=Retry(NoBackoff(), 0)
    )
    try:
        with pytest.raises(AuthenticationError):
            await bad.ping()
    finally:
        await bad.aclose()


def _minio(infra: Infra) -> Minio:
    return Minio(
        infra.minio_endpoint, access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key, secure=False, region="us-east-1",
    )  # fmt: skip


async def test_s3_presigned_get(infra: Infra) -> None:
    client = _minio(infra)
    assert client.bucket_exists(infra.minio_bucket)
    data = uuid.uuid4().bytes * 5000
    name = f"local-test/{uuid.uuid4().hex}.bin"
    client.put_object(infra.minio_bucket, name, io.BytesIO(data), len(data))
    url = client.presigned_get_object(infra.minio_bucket, name, expires=timedelta(minutes=5))
    assert url.startswith("http://")
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == data
        signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
        tampered = url.replace(signature, "0" * 64)
        assert (await http.get(tampered)).status_code == 403


@pytest.mark.skipif(shutil.which("java") is None, reason="needs java for the local launcher")
async def test_kafka_restart_keeps_topics(tmp_path: Path) -> None:
    """stop/start as fault tests use them, on a private broker so the session's is undisturbed."""
    kafka_port, controller_port = free_ports(2)
    config = StackConfig(
        state_dir=tmp_path, cache_dir=cache_dir(),
        kafka_port=kafka_port, kafka_controller_port=controller_port,
    )  # fmt: skip
    stack = Stack(config)
    try:
        (status,) = stack.up(["kafka"])
        assert status.running and status.healthy
        bootstrap = stack.kafka.bootstrap
        assert await _roundtrip(bootstrap, "before", b"one") == b"one"
        stack.stop("kafka")
        assert not stack.status(["kafka"])[0].running
        stack.start("kafka")
        assert await _roundtrip(bootstrap, "before", b"two", create=False) == b"one"
    finally:
        stack.down()
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
