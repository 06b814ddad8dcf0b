"""The publisher against a real broker: it outlives producer states aiokafka cannot recover from.

The broken state is made the way a broker restart that lost its last batches makes it: the
producer's sequence number for a partition runs ahead of the broker's, so the broker itself
answers OutOfOrderSequenceNumber.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber
from aiokafka.structs import TopicPartition

from stt_common import bus
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_testing import kafka_tools

pytestmark = pytest.mark.infra


@pytest.fixture
def settings(infra: Any) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=infra.kafka_bootstrap, publish_timeout=5)


@pytest.fixture
async def topic(settings: KafkaSettings) -> str:
    name = f"publisher-{uuid.uuid4().hex[:8]}"
    await kafka_tools.create_topic(settings.bootstrap_servers, name)
    return name


@pytest.fixture
async def publisher(settings: KafkaSettings) -> AsyncIterator[Publisher]:
    publisher = Publisher(settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


def run_sequence_ahead(producer: AIOKafkaProducer, tp: TopicPartition) -> None:
    """Make the producer number its next batch as if the broker had lost some before it."""
    producer._txn_manager.increment_sequence_number(tp, 5)


async def test_plain_producer_stays_broken(settings: KafkaSettings, topic: str) -> None:
    # The premise: aiokafka alone keeps failing, so the publisher's recovery is what we test.
    producer = bus.producer(settings)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"first", key=b"k")
        run_sequence_ahead(producer, TopicPartition(topic, meta.partition))
        for _ in range(2):
            with pytest.raises(OutOfOrderSequenceNumber):
                await producer.send_and_wait(topic, b"again", key=b"k")
    finally:
        await producer.stop()


async def test_out_of_order_sequence_gets_a_new_producer(
    publisher: Publisher, settings: KafkaSettings, topic: str
) -> None:
    meta = await publisher.send_and_wait(topic, b"first", key=b"k")
    assert publisher._producer is not None
    run_sequence_ahead(publisher._producer, TopicPartition(topic, meta.partition))

    await publisher.send_and_wait(topic, b"second", key=b"k")
    await publisher.send_and_wait(topic, b"third", key=b"k")

    assert publisher.replacements == 1
    records = await kafka_tools.keyed_records(settings.bootstrap_servers, topic, {"k"})
    assert [r.value for r in records] == [b"first", b"second", b"third"]  # each exactly once


async def test_dead_sender_gets_a_new_producer(
    publisher: Publisher, settings: KafkaSettings, topic: str
) -> None:
    await publisher.send_and_wait(topic, b"first", key=b"k")
    assert publisher._producer is not None
    sender = publisher._producer._sender.sender_task
    sender.cancel()  # as if it had ended with an error: nothing would ever be sent again
    await asyncio.wait([sender])

    await publisher.send_and_wait(topic, b"second", key=b"k")

    assert publisher.replacements == 1
    records = await kafka_tools.keyed_records(settings.bootstrap_servers, topic, {"k"})
    assert [r.value for r in records] == [b"first", b"second"]
