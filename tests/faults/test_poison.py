"""Issue 13 items 4, 5, 8 through the real stack (API, projector, two fake-engine transcribers):
a poison event just under Kafka's size limit and a far-future `not_before` on the submit topic
neither jam their partition nor delay the valid job behind them, and each is dead-lettered once,
by the transcriber group."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from stt_common import dead_letters
from stt_common.messages import SubmitEvent
from stt_testing import kafka_tools
from tests.faults.conftest import FaultStack, new_ids

pytestmark = [pytest.mark.infra, pytest.mark.faults]
NEAR_LIMIT = 1_040_000  # bytes: the broker takes it (message.max.bytes ~1 MiB), with headers not


async def send_raw(stack: FaultStack, key: str, value: bytes) -> None:
    """As an upstream producer would: straight to the submit topic, keyed like the job after it
    (so both land on one partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(stack.env["KAFKA_TOPIC_SUBMIT"], value, key=key.encode())
    finally:
        await producer.stop()


async def dead_letters_of(stack: FaultStack, key: str) -> list[dict[str, bytes]]:
    records = await kafka_tools.keyed_records(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_TOPIC_DLQ"], {key}, wait=3
    )
    return [dict(r.headers) | {"value-size": str(len(r.value or b"")).encode()} for r in records]


async def test_a_poison_event_just_under_the_size_limit_neither_jams_nor_doubles(
    fault_stack: FaultStack,
) -> None:
    (rid,) = new_ids("huge", 1)
    poison = b'{"request_id": "' + rid.encode() + b'", "media_url": "' + b"x" * NEAR_LIMIT + b'"'
    await send_raw(fault_stack, rid, poison)
    assert fault_stack.submit(rid).status_code == 202
    started = time.monotonic()
    (body,) = (await asyncio.to_thread(fault_stack.wait_terminal, [rid], 90)).values()
    assert body["status"] == "COMPLETED", body
    assert time.monotonic() - started < 60
    await asyncio.sleep(2)  # a second copy, if any, would be out by now
    dead = await dead_letters_of(fault_stack, rid)
    assert len(dead) == 1, dead  # once, not once per consumer group
    (copy,) = dead
    assert copy["stt-consumer-group"] == fault_stack.env["KAFKA_TRANSCRIBER_GROUP"].encode()
    assert copy["stt-error-type"] == b"poison_event"
    assert copy[dead_letters.TRUNCATED].startswith(f"value={len(poison)} ".encode())
    for service in fault_stack.transcribers:  # nobody crashed on it
        assert service.proc is not None and service.proc.poll() is None, service.tail()


async def test_a_far_future_not_before_on_the_submit_topic_delays_nothing(
    fault_stack: FaultStack,
) -> None:
    (rid,) = new_ids("notbefore", 1)
    waits = SubmitEvent(request_id=rid + "-2099", media_url=fault_stack.clip_url).model_copy(
        update={"not_before": datetime(2099, 1, 1, tzinfo=UTC)}
    )
    await send_raw(fault_stack, rid, waits.model_dump_json().encode())
    assert fault_stack.submit(rid).status_code == 202
    (body,) = (await asyncio.to_thread(fault_stack.wait_terminal, [rid], 60)).values()
    assert body["status"] == "COMPLETED", body
    assert fault_stack.get(waits.request_id)["status"] == "404"  # refused, never a job
    (copy,) = await dead_letters_of(fault_stack, rid)
    assert copy["stt-consumer-group"] == fault_stack.env["KAFKA_TRANSCRIBER_GROUP"].encode()
    assert b"not_before is only accepted on retry topics" in copy["stt-error-message"]
