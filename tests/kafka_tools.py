"""Small Kafka helpers for tests: partition-aware ids and consumer-group membership."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner


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


async def wait_for_members(bootstrap: str, group: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await group_members(bootstrap, group) == count:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"group {group} never reached {count} stable members")
