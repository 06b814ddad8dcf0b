"""The polling hint: `poll_after_seconds` and `Retry-After` on PROCESSING answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from stt_api import polling
from stt_common.messages import JobRecord, JobStatus, Stage
from tests.api import job_records


def processing(**fields: object) -> JobRecord:
    return JobRecord(request_id="p-1", status=JobStatus.PROCESSING, **fields)  # type: ignore[arg-type]


def poll_after(record: JobRecord, rtf: float = polling.DEFAULT_RTF) -> float | None:
    return polling.PollAdvisor(rtf).poll_after(record, now=record.updated_at)


def test_unknown_duration_or_progress_means_two_seconds() -> None:
    assert poll_after(processing()) == 2.0
    assert poll_after(processing(duration=100.0)) == 2.0
    assert poll_after(processing(progress=0.5)) == 2.0


def test_estimate_from_duration_progress_and_rtf() -> None:
    assert poll_after(processing(duration=100.0, progress=0.5), rtf=0.15) == 7.5
    assert poll_after(processing(duration=100.0, progress=0.0), rtf=0.1) == 10.0


def test_estimate_counts_the_time_since_the_progress_was_reported() -> None:
    record = processing(duration=100.0, progress=0.5)
    later = record.updated_at + timedelta(seconds=5)
    assert polling.PollAdvisor(0.15).poll_after(record, now=later) == 2.5


def test_estimate_is_clamped() -> None:
    assert poll_after(processing(duration=3600.0, progress=0.0)) == 30.0
    assert poll_after(processing(duration=10.0, progress=0.99)) == 0.5
    assert poll_after(processing(duration=10.0, progress=1.0)) == 0.5


def test_the_workers_eta_is_followed_while_transcribing() -> None:
    record = processing(stage="transcribing", duration=60.0, progress=0.0)
    record.eta = record.updated_at + timedelta(seconds=9.95)
    assert poll_after(record, rtf=1.0) == 5.0  # half of the time left: then look again
    record.eta = record.updated_at + timedelta(seconds=1.7)
    assert poll_after(record) == 1.0  # never less than a second while more is left
    record.eta = record.updated_at + timedelta(seconds=0.82)
    assert poll_after(record) == 0.85  # the last stretch: 0.82 s plus the way to Redis
    record.eta = record.updated_at + timedelta(seconds=0.03)
    assert poll_after(record) == 0.1  # never sooner than the floor


def test_past_the_eta_the_wait_grows_with_the_overrun() -> None:
    record = processing(stage="transcribing", duration=600.0, progress=0.9)
    record.eta = record.updated_at - timedelta(seconds=1)
    assert poll_after(record) == 0.1
    record.eta = record.updated_at - timedelta(seconds=40)
    assert poll_after(record) == 4.0
    record.eta = record.updated_at - timedelta(hours=2)
    assert poll_after(record) == 30.0


def test_an_eta_outside_transcribing_is_ignored() -> None:
    record = processing(stage="retrying", duration=100.0, progress=0.5)
    record.eta = record.updated_at + timedelta(seconds=20)
    assert poll_after(record, rtf=0.15) == 7.5


def test_the_real_time_factor_follows_completed_jobs() -> None:
    advisor = polling.PollAdvisor(0.15)
    for n in range(30):
        done = JobRecord(
            request_id=f"p-3-{n}", status=JobStatus.COMPLETED, duration=60.0, processing_time=3.0
        )
        assert advisor.poll_after(done) is None
        advisor.observe(done)
    assert advisor.rtf == pytest.approx(0.05, abs=0.001)


def test_a_completed_job_counts_once_however_often_it_is_polled() -> None:
    once, polled = polling.PollAdvisor(0.15), polling.PollAdvisor(0.15)
    done = JobRecord(
        request_id="p-4", status=JobStatus.COMPLETED, duration=60.0, processing_time=30.0
    )
    once.observe(done)
    for _ in range(10):  # a client polling the finished job in a loop
        assert polled.poll_after(done) is None
        polled.observe(done)
    assert polled.rtf == once.rtf == pytest.approx(0.15 + polling.SMOOTHING * (0.5 - 0.15))


def test_reading_the_hint_learns_nothing() -> None:
    advisor = polling.PollAdvisor(0.15)
    done = JobRecord(
        request_id="p-5", status=JobStatus.COMPLETED, duration=60.0, processing_time=30.0
    )
    assert advisor.poll_after(done) is None
    assert advisor.rtf == 0.15


def test_finished_jobs_get_no_hint() -> None:
    done = JobRecord(request_id="p-2", status=JobStatus.COMPLETED)
    assert poll_after(done) is None


def test_retry_after_header_is_whole_seconds() -> None:
    assert polling.retry_after_header(7.5) == "8"
    assert polling.retry_after_header(0.2) == "1"
    assert polling.retry_after_header(2.0) == "2"


@pytest.mark.infra
async def test_submit_and_poll_carry_the_hint(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = "poll-" + uuid.uuid4().hex[:10]
    media = "http://minio-host/bucket/audio.mp3"
    resp = await client.post("/api/v1/transcribe", json={"request_id": rid, "media_url": media})
    assert resp.json()["poll_after_seconds"] == 2.0
    assert resp.headers["Retry-After"] == "2"
    record = JobRecord(
        request_id=rid,
        status=JobStatus.PROCESSING,
        generation=2,  # outranks the submitted record
        stage="transcribing",
        progress=0.5,
        duration=100.0,
    )
    async with job_records.store(api_env) as store:
        await store.apply(record, time.time())
    resp = await client.get(f"/api/v1/transcribe/{rid}")
    hint = resp.json()["poll_after_seconds"]
    assert 6.5 <= hint <= 7.5  # 100 s x 0.5 left x rtf 0.15, less the time since the update
    assert resp.headers["Retry-After"] in ("7", "8")


@pytest.mark.infra
async def test_a_completed_job_has_no_hint(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = "poll-" + uuid.uuid4().hex[:10]
    async with job_records.store(api_env) as store:
        await store.apply(job_records.completed(rid, []), time.time())
    resp = await client.get(f"/api/v1/transcribe/{rid}")
    assert "poll_after_seconds" not in resp.json()
    assert "Retry-After" not in resp.headers


@pytest.mark.infra
async def test_long_poll_holds_until_the_job_finishes(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = "lp-" + uuid.uuid4().hex[:10]
    media = "http://minio-host/bucket/audio.mp3"
    await client.post("/api/v1/transcribe", json={"request_id": rid, "media_url": media})
    started = time.monotonic()
    held = await client.get(f"/api/v1/transcribe/{rid}", params={"wait": 1})
    assert held.json()["status"] == "PROCESSING"
    assert time.monotonic() - started >= 1.0

    async def finish_soon() -> None:
        await asyncio.sleep(0.5)
        async with job_records.store(api_env) as store:
            await store.apply(job_records.completed(rid, []), time.time())

    finisher = asyncio.create_task(finish_soon())
    started = time.monotonic()
    done = await client.get(f"/api/v1/transcribe/{rid}", params={"wait": 20})
    await finisher
    assert done.json()["status"] == "COMPLETED"
    assert time.monotonic() - started < 3


@pytest.mark.infra
async def test_long_poll_is_bounded(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/transcribe/any-id", params={"wait": 31})
    assert resp.status_code == 422
    assert "wait" in resp.json()["detail"]


def test_with_a_hold_window_the_hint_lands_half_a_window_before_the_eta() -> None:
    """That poll is held until the job ends (`hold_seconds`), so the client sleeps no longer
    than the job; without the window the hint aims just after the ETA instead."""
    record = processing(stage=Stage.TRANSCRIBING, duration=60.0, progress=0.2)
    record.eta = record.updated_at + timedelta(seconds=20)
    held = polling.PollAdvisor(0.15, hold_window=5.0).poll_after(record, now=record.updated_at)
    assert held == 17.5
    assert polling.hold_seconds(record, 5.0, now=record.updated_at + timedelta(seconds=held)) == 5
    close = record.updated_at + timedelta(seconds=19)
    assert polling.PollAdvisor(0.15, hold_window=5.0).poll_after(record, now=close) == 0.1
    assert polling.PollAdvisor(0.15).poll_after(record, now=record.updated_at) == 10.05
