"""The projector notices a Redis that lost its data and rebuilds it by itself.

Every CHECK_EVERY seconds it reads the store's epoch marker (`stt_common.store_epoch`). When the
marker is gone (or a restore's lease ran out), it takes the restore, runs the same rebuild as
`stt projector --rebuild` from the compacted status topic while the consume loop keeps projecting
new events (the ordering rule keeps whichever state is newer), and marks the store READY. Until
then the API answers 503 + Retry-After instead of 404 for jobs it does not find.

If the marker vanishes again during the rebuild (a second loss), the rebuild runs once more
before the store is declared READY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from stt_common import store_epoch
from stt_common.job_store import JobStore
from stt_common.settings import KafkaSettings
from stt_common.store_epoch import StoreState
from stt_projector.rebuild import rebuild

log = logging.getLogger(__name__)
CHECK_EVERY = 1.0  # seconds between looks at the marker: how long a loss can go unnoticed
LEASE = 30.0  # seconds a restore stays ours without renewal (renewed every third of it)


async def watch_store(
    settings: KafkaSettings, store: JobStore, stop: asyncio.Event, owner: str
) -> None:
    """Until `stop`: rebuild the store whenever its marker says it lost its data."""
    topic = settings.topic_status
    while not stop.is_set():
        try:
            if await store_epoch.state(store.redis, topic) is not StoreState.READY:
                if await store_epoch.begin_restore(store.redis, topic, owner, LEASE):
                    await _restore(settings, store, owner)
        except (RedisError, KafkaError, OSError, LookupError) as exc:
            # LookupError: the status topic is not created yet (the consume loop creates it).
            log.warning("store restore failed (%s); retrying", exc)
        except Exception:  # the watch must outlive any one failed attempt
            log.exception("store restore failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_EVERY)


async def _restore(settings: KafkaSettings, store: JobStore, owner: str) -> None:
    topic = settings.topic_status
    log.warning("Redis lost its data (no epoch marker): restoring it from %s", topic)
    while True:
        lost_again = asyncio.Event()
        renewing = asyncio.create_task(_renew(store, topic, owner, lost_again))
        try:
            counts = await rebuild(settings, store)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if not lost_again.is_set():
            break
        log.warning("Redis lost its data again during the restore: restoring once more")
    if await store_epoch.finish_restore(store.redis, topic, owner):
        log.warning("store restored from %s: %s", topic, dict(counts))


async def _renew(store: JobStore, topic: str, owner: str, lost_again: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(LEASE / 3)
        try:
            if await store_epoch.state(store.redis, topic) is StoreState.LOST:
                lost_again.set()
            await store_epoch.begin_restore(store.redis, topic, owner, LEASE)
        except RedisError as exc:  # the rebuild itself fails and is retried
            log.warning("restore lease not renewed (%s)", exc)
