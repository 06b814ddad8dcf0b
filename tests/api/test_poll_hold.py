"""The poll hold window (STT_POLL_HOLD_SECONDS): a poll without `?wait=` of a transcribing job
whose ETA is that close is answered when the job ends, not at once, so a client that sleeps a
fixed interval between polls (the integration guide's: 3 s) sees the result when it happens.

In this process (`create_app` through `httpx.ASGITransport`, the job store on fakeredis), and
once against the real API process and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from stt_api import polling
from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, JobStatus, Stage
from stt_common.settings import Settings, SettingsError
from stt_testing.fakes import InProcessApi
from tests.api import job_records
from tests.api.in_process import api_with, client_of

SEED_COMPLETED = {"request_id", "status", "message", "transcription", "duration", "processing_time"}


def transcribing(request_id: str, eta_in: float) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        request_id=request_id,
        status=JobStatus.PROCESSING,
        generation=2,  # outranks the submitted record
        stage=Stage.TRANSCRIBING,
        progress=0.5,
        duration=60.0,
        eta=now + timedelta(seconds=eta_in),
        updated_at=now,
    )


def completed(request_id: str) -> JobRecord:
    return JobRecord(
        request_id=request_id,
        status=JobStatus.COMPLETED,
        generation=3,
        stage=Stage.DONE,
        progress=1.0,
        duration=60.0,
        processing_time=6.0,
        transcription="xin chào",
    )


async def finish_after(store: JobStore, request_id: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await store.apply(completed(request_id), time.time())


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcessApi:
    return api_with(monkeypatch, tmp_path)  # the default window


@pytest.fixture
async def in_process(app: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as client:
        yield client


async def timed_get(client: httpx.AsyncClient, path: str, **params: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    started = time.monotonic()
    resp = await client.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return time.monotonic() - started, resp.json()


def test_the_window_holds_only_a_near_eta_while_transcribing() -> None:
    now = datetime.now(UTC)
    near = transcribing("h-0", eta_in=2.0)
    assert polling.hold_seconds(near, 5.0, now) == 5.0
    assert polling.hold_seconds(transcribing("h-0", eta_in=-30.0), 5.0, now) == 5.0  # overrun
    assert polling.hold_seconds(transcribing("h-0", eta_in=9.0), 5.0, now) == 0.0  # too far
    assert polling.hold_seconds(near, 0.0, now) == 0.0  # switched off
    queued = near.model_copy(update={"stage": Stage.QUEUED})
    assert polling.hold_seconds(queued, 5.0, now) == 0.0
    no_eta = near.model_copy(update={"eta": None})
    assert polling.hold_seconds(no_eta, 5.0, now) == 0.0
    assert polling.hold_seconds(completed("h-0"), 5.0, now) == 0.0


def test_the_window_is_bounded_under_the_guides_request_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    assert 3 <= Settings().api.poll_hold_seconds < 10  # covers the guide's 3 s sleep
    monkeypatch.setenv("STT_POLL_HOLD_SECONDS", "9")
    with pytest.raises(SettingsError, match="STT_POLL_HOLD_SECONDS"):
        _ = Settings().api


async def test_a_poll_near_the_eta_is_answered_when_the_job_ends(
    in_process: httpx.AsyncClient, app: InProcessApi
) -> None:
    await app.wiring.job_store.apply(transcribing("h-1", eta_in=1.0), time.time())
    finisher = asyncio.create_task(finish_after(app.wiring.job_store, "h-1", 0.6))
    took, body = await timed_get(in_process, "/api/v1/transcribe/h-1")
    await finisher
    assert body["status"] == "COMPLETED"
    assert SEED_COMPLETED <= set(body)  # the seed's fields, as a plain poll gives them
    assert 0.5 <= took < 2.0


async def test_a_poll_far_from_the_eta_is_answered_at_once(
    in_process: httpx.AsyncClient, app: InProcessApi
) -> None:
    await app.wiring.job_store.apply(transcribing("h-2", eta_in=30.0), time.time())
    took, body = await timed_get(in_process, "/api/v1/transcribe/h-2")
    assert body["status"] == "PROCESSING"
    assert body["message"] == "Transcription in progress"
    assert took < 0.5


async def test_wait_zero_answers_at_once_even_near_the_eta(
    in_process: httpx.AsyncClient, app: InProcessApi
) -> None:
    await app.wiring.job_store.apply(transcribing("h-3", eta_in=1.0), time.time())
    took, body = await timed_get(in_process, "/api/v1/transcribe/h-3", wait="0")
    assert body["status"] == "PROCESSING"
    assert took < 0.5


async def test_the_hold_is_capped_at_the_window(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = api_with(monkeypatch, tmp_path, STT_POLL_HOLD_SECONDS="0.5")
    await api.wiring.job_store.apply(transcribing("h-4", eta_in=0.2), time.time())
    async with client_of(api) as client:
        took, body = await timed_get(client, "/api/v1/transcribe/h-4")
    assert body["status"] == "PROCESSING"  # late: still running when the window closed
    assert "poll_after_seconds" in body
    assert 0.45 <= took < 1.5


async def test_a_zero_window_answers_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = api_with(monkeypatch, tmp_path, STT_POLL_HOLD_SECONDS="0")
    await api.wiring.job_store.apply(transcribing("h-5", eta_in=0.5), time.time())
    async with client_of(api) as client:
        took, body = await timed_get(client, "/api/v1/transcribe/h-5")
    assert body["status"] == "PROCESSING"
    assert took < 0.4


@pytest.mark.infra
async def test_the_real_api_holds_a_poll_near_the_eta(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    """The API process with its default window, the job's states written into the real Redis
    as the projector writes them."""
    rid = "hold-" + uuid.uuid4().hex[:10]
    media = "http://minio-host/bucket/audio.mp3"
    submitted = await client.post(
        "/api/v1/transcribe", json={"request_id": rid, "media_url": media}
    )
    assert submitted.status_code == 202
    async with job_records.store(api_env) as store:
        await store.apply(transcribing(rid, eta_in=1.0), time.time())
        finisher = asyncio.create_task(finish_after(store, rid, 1.0))
        started = time.monotonic()
        resp = await client.get(f"/api/v1/transcribe/{rid}")
        took = time.monotonic() - started
        await finisher
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "COMPLETED", (took, body)
    assert body["message"] == "Transcription completed successfully"
    assert body["transcription"] == "xin chào"
    assert "Retry-After" not in resp.headers
    assert 0.9 <= took < 3.0
