"""Small Kafka helpers for tests: partition-aware ids, group membership, reading topics."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord


def ids_per_partition(prefix: str, partitions: int, per_partition: int) -> list[str]:
    """Request ids that the default partitioner spreads evenly over `partitions`."""
    partitioner = DefaultPartitioner()
    wanted = {p: per_partition for p in range(partitions)}
    found: list[str] = []
    everything = list(range(partitions))
    while any(wanted.values()):
        rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        p = partitioner(rid.encode(), everything, everything)
        if wanted[p]:
            wanted[p] -= 1
            found.append(rid)
    return found


async def group_members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        groups = response.groups
        return len(groups[0][5]) if groups and groups[0][2] == "Stable" else 0
    finally:
        await admin.close()


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def wait_for_members(bootstrap: str, group: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await group_members(bootstrap, group) == count:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"group {group} never reached {count} stable members")


async def keyed_records(
    bootstrap: str, topic: str, keys: set[str], wait: float = 3.0, until: int | None = None
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of `topic` whose key is in `keys`, read from the beginning without a group.

    With `until=None` the topic is read until it goes quiet (the first fetch may take `wait`
    seconds); with `until=N` reading stops once N records matched, or after `wait` seconds.
    """
    wanted = {key.encode() for key in keys}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + wait
    try:
        batches = await consumer.getmany(timeout_ms=int(wait * 1000) if until is None else 500)
        while True:
            for records in batches.values():
                found += [r for r in records if r.key in wanted]
            if until is None and not batches:
                break
            if until is not None and (len(found) >= until or time.monotonic() >= deadline):
                break
            batches = await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
    return found
