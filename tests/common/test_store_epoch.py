"""The store's epoch marker (stt_common.store_epoch): who restores a Redis that lost its data,
and when the API may answer 404 again. Lua on fakeredis; the whole loop through real Redis and
Kafka (a wiped Redis rebuilt by the projector by itself): tests/faults/test_truth.py."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from stt_common import store_epoch
from stt_common.store_epoch import StoreState

TOPIC = "t.jobs.status"


async def test_one_projector_restores_and_a_lapsed_restore_is_taken_over() -> None:
    redis = fakeredis.FakeAsyncRedis()
    assert await store_epoch.state(redis, TOPIC) is StoreState.LOST
    with pytest.raises(store_epoch.StoreRestoring):
        await store_epoch.require_ready(redis, TOPIC)

    assert await store_epoch.begin_restore(redis, TOPIC, "a", lease=0.2)
    assert await store_epoch.state(redis, TOPIC) is StoreState.RESTORING
    assert not await store_epoch.begin_restore(redis, TOPIC, "b", lease=0.2)  # a's lease is live
    assert await store_epoch.begin_restore(redis, TOPIC, "a", lease=0.2)  # a renews its own
    await asyncio.sleep(0.3)  # a stopped renewing (died mid-restore)
    assert await store_epoch.begin_restore(redis, TOPIC, "b", lease=0.2)
    assert not await store_epoch.finish_restore(redis, TOPIC, "a")  # no longer a's to finish
    assert await store_epoch.finish_restore(redis, TOPIC, "b")

    assert await store_epoch.state(redis, TOPIC) is StoreState.READY
    await store_epoch.require_ready(redis, TOPIC)
    assert not await store_epoch.begin_restore(redis, TOPIC, "c", lease=0.2)  # nothing to do


async def test_markers_of_different_status_topics_are_separate() -> None:
    redis = fakeredis.FakeAsyncRedis()
    await store_epoch.mark_ready(redis, TOPIC)
    assert await store_epoch.state(redis, "other.jobs.status") is StoreState.LOST
    await redis.flushall()  # what a Redis that lost its data looks like
    assert await store_epoch.state(redis, TOPIC) is StoreState.LOST
