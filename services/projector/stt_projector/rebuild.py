"""`stt projector --rebuild`: restore every job in Redis from the compacted status topic.

Each job comes back with its own expiry (`updated_at + REDIS_JOB_TTL`); jobs whose time has
passed are skipped. Safe while projectors run: the ordering rule keeps whichever state is newer.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from stt_common import bus
from stt_common.job_store import JobStore
from stt_common.messages import JobRecord
from stt_common.settings import KafkaSettings
from stt_projector.projection import PoisonEvent, record_from

log = logging.getLogger(__name__)


async def rebuild(settings: KafkaSettings, store: JobStore) -> Counter[str]:
    consumer = bus.consumer(settings, group=None, enable_auto_commit=False)
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        tps = await bus.topic_partitions(consumer, settings.topic_status)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                pending: list[JobRecord] = []  # applied together, in order, up to a tombstone
                for record in records:
                    if record.value is None and record.key:  # a tombstone: the job was deleted
                        await _apply(store, pending, counts)
                        await store.delete(record.key.decode())  # a job id
                        counts["deleted"] += 1
                        continue
                    try:
                        pending.append(record_from(record.topic, record.value, settings))
                    except PoisonEvent:
                        counts["unreadable"] += 1
                await _apply(store, pending, counts)
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    log.info("rebuild done: %s", dict(counts))
    return counts


async def _apply(store: JobStore, pending: list[JobRecord], counts: Counter[str]) -> None:
    for outcome in await store.apply_many(pending, time.time()):
        counts[str(outcome)] += 1
    pending.clear()
