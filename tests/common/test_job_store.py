"""The ordering rule and the expiry rule, run in a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from stt_common.job_store import ApplyOutcome, JobStore, job_key, rank, settles
from stt_common.messages import JobRecord, JobStatus
from stt_common.store_epoch import StoreRestoring

pytestmark = pytest.mark.infra
TTL = 3600


@pytest.fixture
async def store(infra: Any) -> AsyncIterator[JobStore]:
    redis = Redis(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    yield JobStore(redis, TTL)
    await redis.aclose()


def record(
    rid: str, status: JobStatus, generation: int = 1, at: datetime | None = None, **kw: Any
) -> JobRecord:
    return JobRecord(
        request_id=rid,
        status=status,
        generation=generation,
        updated_at=at or datetime.now(UTC),
        **kw,
    )


def rid() -> str:
    return "js-" + uuid.uuid4().hex


async def test_late_processing_never_overwrites_a_result(store: JobStore) -> None:
    r = rid()
    t0 = datetime.now(UTC)
    assert (
        await store.apply(record(r, JobStatus.PROCESSING, at=t0), time.time())
        is ApplyOutcome.APPLIED
    )
    done = record(r, JobStatus.COMPLETED, at=t0 + timedelta(seconds=5), transcription="hi")
    assert await store.apply(done, time.time()) is ApplyOutcome.APPLIED
    late = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=9), stage="transcribing")
    assert await store.apply(late, time.time()) is ApplyOutcome.STALE
    stored = await store.get(r)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert stored.transcription == "hi"


async def test_first_terminal_result_of_a_generation_wins(store: JobStore) -> None:
    r = rid()
    first = record(r, JobStatus.COMPLETED, transcription="first")
    second = record(r, JobStatus.FAILED, at=first.updated_at + timedelta(seconds=1), error="x")
    assert await store.apply(first, time.time()) is ApplyOutcome.APPLIED
    assert await store.apply(second, time.time()) is ApplyOutcome.SAME
    stored = await store.get(r)
    assert stored is not None and stored.transcription == "first"


async def test_a_replay_moves_failed_to_processing_to_completed(store: JobStore) -> None:
    r = rid()
    assert (
        await store.apply(record(r, JobStatus.FAILED, error="403"), time.time())
        is ApplyOutcome.APPLIED
    )
    assert (
        await store.apply(record(r, JobStatus.PROCESSING, 2), time.time()) is ApplyOutcome.APPLIED
    )
    stale = record(r, JobStatus.COMPLETED, 1, transcription="old")
    assert await store.apply(stale, time.time()) is ApplyOutcome.STALE
    assert (
        await store.apply(record(r, JobStatus.COMPLETED, 2, transcription="new"), time.time())
        is ApplyOutcome.APPLIED
    )
    stored = await store.get(r)
    assert stored is not None and (stored.generation, stored.transcription) == (2, "new")


async def test_progress_never_goes_backwards(store: JobStore) -> None:
    r = rid()
    t0 = datetime.now(UTC)
    newer = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=2), progress=0.5)
    older = record(r, JobStatus.PROCESSING, at=t0, progress=0.1)
    assert await store.apply(newer, time.time()) is ApplyOutcome.APPLIED
    assert await store.apply(older, time.time()) is ApplyOutcome.SAME
    stored = await store.get(r)
    assert stored is not None and stored.progress == 0.5


async def test_expiry_counts_from_the_jobs_own_time(store: JobStore) -> None:
    r = rid()
    finished = datetime.now(UTC) - timedelta(seconds=TTL - 100)
    assert (
        await store.apply(record(r, JobStatus.COMPLETED, at=finished), time.time())
        is ApplyOutcome.APPLIED
    )
    ttl = await store.redis.ttl(job_key(r))
    assert 90 <= ttl <= 100
    gone = record(rid(), JobStatus.COMPLETED, at=datetime.now(UTC) - timedelta(seconds=TTL + 1))
    assert await store.apply(gone, time.time()) is ApplyOutcome.EXPIRED
    assert await store.get(gone.request_id) is None


async def test_create_is_create_if_absent_and_discard_only_removes_its_own(store: JobStore) -> None:
    r = rid()
    mine = record(r, JobStatus.PROCESSING)
    existing, written = await store.create(mine, ttl=60)
    assert existing is None
    assert 0 < await store.redis.ttl(job_key(r)) <= 60
    again, _ = await store.create(record(r, JobStatus.PROCESSING), ttl=60)
    assert again is not None and again.request_id == r
    await store.discard(r, "something else")
    assert await store.get(r) is not None
    await store.confirm(mine)
    assert await store.redis.ttl(job_key(r)) > 60
    await store.discard(r, written)
    assert await store.get(r) is None


async def test_a_newer_report_that_lowers_progress_is_stale_unless_a_retry_restarts(
    store: JobStore,
) -> None:
    """Issue 13 item 6: a worker frozen past the session timeout reports after the job's new
    owner (a newer `updated_at`, lower progress): dropped. A retry (attempt + 1) starts over."""
    r = rid()
    t0 = datetime.now(UTC)
    owner = record(r, JobStatus.PROCESSING, at=t0, progress=0.944)
    frozen = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=1), progress=0.66)
    unknown = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=2), stage="downloading")
    retry = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=3), attempt=2)
    late_first = record(r, JobStatus.PROCESSING, at=t0 + timedelta(seconds=4), progress=0.99)
    assert await store.apply(owner, time.time()) is ApplyOutcome.APPLIED
    assert await store.apply(frozen, time.time()) is ApplyOutcome.STALE
    assert await store.apply(unknown, time.time()) is ApplyOutcome.STALE
    stored = await store.get(r)
    assert stored is not None and stored.progress == 0.944
    assert await store.apply(retry, time.time()) is ApplyOutcome.APPLIED
    assert await store.apply(late_first, time.time()) is ApplyOutcome.STALE  # attempt 1, after 2
    stored = await store.get(r)
    assert stored is not None and stored.attempt == 2 and stored.progress is None


def test_settles_is_the_rank_rule() -> None:
    done = record("x", JobStatus.COMPLETED, generation=2)
    running = record("x", JobStatus.PROCESSING, generation=2)
    assert settles(done, 1) and settles(done, 2) and not settles(done, 3)
    assert settles(running, 1) and not settles(running, 2)
    assert rank(done) > rank(running) > rank(record("x", JobStatus.COMPLETED, generation=1))


async def test_create_if_ready_writes_nothing_unless_the_store_is_ready(store: JobStore) -> None:
    """The submit's one script (stt_api.jobs): the epoch marker, the record and the unconfirmed
    event of a known job, read and written together."""
    r, marker, pending = rid(), f"js-epoch-{uuid.uuid4().hex}", f"js-pending-{uuid.uuid4().hex}"
    keys = {"epoch_key": marker, "pending_event_key": pending}
    for state in (None, "restoring"):  # marker lost, then a restore under way
        if state is not None:
            await store.redis.hset(marker, "state", state)
        with pytest.raises(StoreRestoring):
            await store.create_if_ready(record(r, JobStatus.PROCESSING), ttl=60, **keys)
        assert await store.get(r) is None
    await store.redis.hset(marker, "state", "ready")
    mine = record(r, JobStatus.PROCESSING)
    created = await store.create_if_ready(mine, ttl=60, **keys)
    assert created.existing is None and created.pending_event is None
    assert 0 < await store.redis.ttl(job_key(r)) <= 60
    known = await store.create_if_ready(record(r, JobStatus.PROCESSING), ttl=60, **keys)
    assert known.existing is not None and known.existing.updated_at == mine.updated_at
    assert known.pending_event is None
    await store.redis.set(pending, b"the event")
    known = await store.create_if_ready(record(r, JobStatus.PROCESSING), ttl=60, **keys)
    assert known.pending_event == b"the event"
    await store.redis.delete(marker, pending)
