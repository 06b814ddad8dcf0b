"""Helper tasks stop for sure (`stt_common.tasks`), even when a cancel is swallowed.

Found by the soak (tests/faults/test_soak.py): redis-py's asyncio client returns normally from
a command cancelled in flight about one time in five, so a claim's renewal loop or a job's
cancel watch, cancelled once, ran on for ever and `cancel(); await task` never returned: a
transcriber renewed the claim of a job it no longer ran and the job's partition stood still.
The fast tier uses a coroutine that swallows cancels on purpose; the infra tests cancel the
real loops while they talk to the real Redis, many times, so that some cancels land in a
command (the cancel watch's test fails without the fix: 29 of 60 cancels lost in one run; the
claim renewal's did not lose one in 60 in two runs without it, so it is a guard, not a proof).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from stt_common import cancellation, claims, job_store, tasks
from stt_common.messages import SubmitEvent
from stt_common.settings import RedisSettings
from stt_transcriber import job_runner

ROUNDS = 60  # cancels of a real loop, each at a random moment


async def _swallows(times: int, ran: list[str]) -> None:
    """Swallows the first `times` cancels, as a library call that drops a CancelledError."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed += 1
            ran.append("swallowed")
            if swallowed > times:
                raise


async def test_stop_ends_a_task_that_swallowed_its_first_cancels() -> None:
    ran: list[str] = []
    task = asyncio.create_task(_swallows(2, ran))
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(task, patience=5), 2)
    assert task.cancelled() and ran == ["swallowed"] * 3


async def test_stop_gives_up_after_its_patience(caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(_swallows(8, []))  # more than 0.2 s of cancels swallowed
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="stt_common.tasks"):
        await asyncio.wait_for(tasks.stop(task, patience=0.2), 2)
    assert not task.done()
    assert "did not stop within 0.2s" in caplog.text
    await tasks.stop(task)  # it gives in at the ninth
    assert task.cancelled()


async def test_cancel_requested_sees_a_swallowed_cancel() -> None:
    seen: list[bool] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallowed
        seen.append(tasks.cancel_requested())

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await task
    assert seen == [True]
    assert not tasks.cancel_requested()  # this test's own task was never cancelled


@pytest.fixture
def redis(infra: Any) -> Iterator[Redis]:
    password = SecretStr(infra.redis_password) if infra.redis_password else None
    settings = RedisSettings(host=infra.redis_host, port=infra.redis_port, password=password)
    yield job_store.connect(settings)  # the services' pool (BlockingConnectionPool)


async def _ends_on_one_cancel(start: Any) -> int:
    """Cancel a task made by `start()` once, ROUNDS times, at random moments; the ones that
    did not end within 2 s."""
    hung = 0
    for _ in range(ROUNDS):
        task = asyncio.create_task(start())
        await asyncio.sleep(random.uniform(0, 0.005))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        if not done:
            hung += 1
            await tasks.stop(task, patience=2)
    return hung


async def test_a_claims_renewal_ends_on_one_cancel_while_it_talks_to_redis(
    redis: Redis,
) -> None:
    owner = claims.Claims(redis, "soak-test", lease=0.001, done_ttl=60)  # a renewal every 0.3 ms
    job = SubmitEvent(request_id=f"renew-{uuid.uuid4().hex[:8]}", media_url="http://x.test/a")
    claim = await owner.acquire(job)
    assert claim.outcome is claims.ClaimOutcome.ACQUIRED
    assert await _ends_on_one_cancel(lambda: owner._keep(claim)) == 0

    async def renewing_block() -> None:
        async with owner.renewing(claim):
            await asyncio.sleep(random.uniform(0, 0.005))

    for _ in range(ROUNDS // 3):  # the block's exit stops its renewal, within a bound
        await asyncio.wait_for(renewing_block(), 5)
    await redis.aclose()


async def test_a_jobs_cancel_watch_ends_on_one_cancel_while_it_talks_to_redis(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_runner, "CANCEL_CHECK_EVERY", 0.0005)
    job = SubmitEvent(request_id=f"watch-{uuid.uuid4().hex[:8]}", media_url="http://x.test/a")

    async def cancelled(job: SubmitEvent) -> bool:
        return await cancellation.covers(redis, job.job_id, job.submitted_at)

    watch = job_runner.CancelWatch(job, cancelled)
    assert await _ends_on_one_cancel(watch.watch) == 0
    assert not watch()
    await redis.aclose()
