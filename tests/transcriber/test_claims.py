"""Claims (`stt_common.claims`) in the transcriber loop, fast tier (fake consumer, fakeredis):
copies of a job run once, a retry still runs, a stale copy does not, and a claim held by another
worker makes the loop wait for it instead of running a second copy or skipping the job.
The same through the real broker and Redis with the projector stopped: tests/faults/test_truth.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stt_common import claims
from stt_common.messages import ErrorType, JobStatus, Source, SubmitEvent
from stt_transcriber.errors import JobError
from tests.transcriber.test_worker_loop import Loop


@pytest.fixture
def loop(tmp_path: Path) -> Loop:
    return Loop(tmp_path)


async def test_copies_of_one_job_run_once_however_the_projector_lags(loop: Loop) -> None:
    for _ in range(5):
        last = loop.put("c-1")
    await loop.run()
    assert loop.ran == ["c-1"]
    assert [r.status for r in loop.results()] == [JobStatus.COMPLETED]
    assert loop.consumer.committed == {loop.submit: last + 1}
    assert await loop.redis.get(claims.claim_key("c-1", 1)) == b"done"


async def test_a_new_generation_runs_again(loop: Loop) -> None:
    loop.put("c-2")
    loop.put("c-2", generation=2)
    await loop.run()
    assert loop.ran == ["c-2", "c-2"]


async def test_a_retry_runs_but_a_stale_copy_of_the_first_attempt_does_not(loop: Loop) -> None:
    loop.outcome = JobError("media server busy", ErrorType.DOWNLOAD, transient=True)
    loop.put("c-3")
    loop.put("c-3")  # a duplicate of the first attempt, behind it
    await loop.run()
    assert loop.ran == ["c-3"]
    assert await loop.redis.get(claims.claim_key("c-3", 1)) == b"next 2"
    loop.outcome = None
    loop.stop.clear()
    loop.put("c-3", attempt=2)  # what the retry topic hands back
    await loop.run()
    assert loop.ran == ["c-3", "c-3"]
    assert await loop.redis.get(claims.claim_key("c-3", 1)) == b"done"


async def test_a_live_claim_of_another_worker_is_waited_for_not_run_nor_skipped(
    loop: Loop,
) -> None:
    key = claims.claim_key("c-4", 1)
    await loop.redis.set(key, "run other-worker/x 1", px=1500)
    loop.put("c-4")
    started = asyncio.get_running_loop().time()
    await loop.run()
    assert loop.ran == ["c-4"]  # once the other worker's lease ran out
    assert asyncio.get_running_loop().time() - started >= 1.0
    assert loop.consumer.committed == {loop.submit: 1}


async def test_a_claim_taken_by_another_worker_is_never_overwritten(loop: Loop) -> None:
    mine = claims.Claims(loop.redis, "me", lease=30, done_ttl=60)
    job = SubmitEvent(request_id="c-5", media_url="https://media.example/a", source=Source.API)
    claim = await mine.acquire(job)
    assert claim.outcome is claims.ClaimOutcome.ACQUIRED
    await loop.redis.set(claim.key, "run other/y 1")  # our lease ran out; another took it
    await mine.finish("c-5")
    assert await loop.redis.get(claim.key) == b"run other/y 1"
