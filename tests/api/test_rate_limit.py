"""The rate limiter's arithmetic against a real Redis: shared counts, sliding minute, outages."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import asyncio as aioredis

from stt_api.rate_limit import WINDOW_SECONDS, RateLimiter
from stt_testing import processes

MINUTE = 29_000_000  # a fixed minute number, so the arithmetic does not depend on the clock


def at(minute: int, seconds: float) -> float:
    return minute * WINDOW_SECONDS + seconds


@pytest.fixture
async def redis(infra: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()


def identity() -> str:
    return "key-" + uuid.uuid4().hex[:8]


@pytest.mark.infra
async def test_processes_share_one_budget(redis: aioredis.Redis) -> None:
    key = identity()
    first, second = RateLimiter(redis, 10, flush_seconds=0), RateLimiter(redis, 10, 0)
    assert [first.check(key, at(MINUTE, 10)) for _ in range(6)] == [None] * 6
    await first.drain()
    assert second.check(key, at(MINUTE, 11)) is None  # it knew nothing yet
    await second.drain()  # now it knows the other process took 6
    answers = [second.check(key, at(MINUTE, 12)) for _ in range(4)]
    assert answers[:3] == [None] * 3
    assert answers[3] is not None and 1 <= answers[3] <= 48
    await second.drain()
    assert int(await redis.get(RateLimiter.redis_key(key, MINUTE)) or 0) == 10


@pytest.mark.infra
async def test_the_previous_minute_fades_out(redis: aioredis.Redis) -> None:
    key = identity()
    busy = RateLimiter(redis, 10, flush_seconds=0)
    assert all(busy.check(key, at(MINUTE, 50)) is None for _ in range(10))
    await busy.drain()
    later = RateLimiter(redis, 10, flush_seconds=0)
    half_way = at(MINUTE + 1, 30)  # half of the previous minute still counts: 5 requests
    assert later.check(key, half_way) is None
    await later.drain()
    answers = [later.check(key, half_way) for _ in range(5)]
    assert answers[:4] == [None] * 4
    # One over, and the previous minute's 10 fade at one per 6 s: wait 6 s, not the 30 s left.
    assert answers[4] == 6
    await later.drain()


@pytest.mark.infra
async def test_refused_requests_are_not_counted(redis: aioredis.Redis) -> None:
    key = identity()
    limiter = RateLimiter(redis, 3, flush_seconds=0)
    answers = [limiter.check(key, at(MINUTE, 1)) for _ in range(20)]
    assert answers.count(None) == 3
    await limiter.drain()
    assert int(await redis.get(RateLimiter.redis_key(key, MINUTE)) or 0) == 3


async def test_without_redis_each_process_still_limits(caplog: pytest.LogCaptureFixture) -> None:
    dead = aioredis.Redis(port=processes.free_port(), socket_connect_timeout=0.5)
    limiter = RateLimiter(dead, 3, flush_seconds=0)
    try:
        with caplog.at_level(logging.WARNING, logger="stt_api.rate_limit"):
            answers = [limiter.check("k", at(MINUTE, 1)) for _ in range(3)]
            await limiter.drain()
            answers += [limiter.check("k", at(MINUTE, 2)) for _ in range(2)]
            await limiter.drain()
    finally:
        await dead.aclose()
    assert answers[:3] == [None] * 3
    assert answers[3] == 58 and answers[4] == 58
    assert "Redis unavailable" in caplog.text


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(aioredis.Redis(), 0)
    assert all(limiter.check("k") is None for _ in range(1000))
