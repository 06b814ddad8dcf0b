"""`list_jobs` (sync and async) and `stt jobs`: against a scripted transport, and the async
client against the API in this process (its routes, guard and Lua job store on fakeredis)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stt_cli import jobs as jobs_cli
from stt_client import AsyncSttClient, Job, SttClient
from stt_common.messages import JobRecord, JobStatus
from stt_common.settings import Settings
from stt_testing.fakes import in_process_api


def pages_transport(seen: list[httpx.QueryParams]) -> httpx.MockTransport:
    """Three pages of two jobs; each page's cursor names the next."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        page = int(request.url.params.get("cursor", "0"))
        jobs = [
            {"request_id": f"j{page * 2 + i}", "status": "COMPLETED", "metadata": {"k": "v"}}
            for i in range(2)
        ]
        body: dict[str, object] = {"jobs": jobs}
        if page < 2:
            body["next_cursor"] = str(page + 1)
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle)


def test_sync_list_jobs_follows_the_cursors_and_sends_the_filters() -> None:
    seen: list[httpx.QueryParams] = []
    since = datetime(2026, 12, 1, tzinfo=UTC)
    with SttClient("http://stt", "k", transport=pages_transport(seen)) as stt:
        found = list(
            stt.list_jobs(status="FAILED", since=since, metadata=("post", "42"), page_size=2)
        )
    assert [j.request_id for j in found] == [f"j{i}" for i in range(6)]
    assert found[0].metadata == {"k": "v"}
    assert [p.get("cursor") for p in seen] == [None, "1", "2"]
    first = seen[0]
    assert (first["status"], first["limit"], first["metadata.post"]) == ("FAILED", "2", "42")
    assert datetime.fromisoformat(first["since"]) == since
    assert "include" not in first


async def test_async_list_jobs_follows_the_cursors() -> None:
    seen: list[httpx.QueryParams] = []
    async with AsyncSttClient("http://stt", "k", transport=pages_transport(seen)) as stt:
        found = [job.request_id async for job in stt.list_jobs(include_transcript=True)]
    assert found == [f"j{i}" for i in range(6)]
    assert seen[0]["include"] == "transcript"


async def test_async_list_jobs_against_the_api(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STT_API_KEYS", "crawler:ck,other:ok")
    api = in_process_api(Settings())
    start = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(23):
        at = start + timedelta(seconds=i)
        record = JobRecord(
            request_id=f"r{i:02d}",
            tenant="crawler",
            status=JobStatus.FAILED if i % 4 == 0 else JobStatus.COMPLETED,
            submitted_at=at,
            updated_at=at,
        )
        await api.wiring.job_store.apply(record, now=at.timestamp())
    transport = httpx.ASGITransport(app=api.app)
    async with AsyncSttClient("http://api", "ck", transport=transport) as stt:
        every = [j.request_id async for j in stt.list_jobs(page_size=5)]
        failed = [j.request_id async for j in stt.list_jobs(status="FAILED", page_size=2)]
        await stt.submit("new-1", "https://media.example/a.mp3", metadata={"post": "7"})
        tagged = [j async for j in stt.list_jobs(metadata=("post", "7"))]
    assert every == [f"r{i:02d}" for i in range(22, -1, -1)]
    assert failed == [f"r{i:02d}" for i in (20, 16, 12, 8, 4, 0)]
    assert [(j.request_id, j.metadata, j.tenant) for j in tagged] == [
        ("new-1", {"post": "7"}, "crawler")
    ]
    async with AsyncSttClient("http://api", "ok", transport=transport) as other:
        assert [j async for j in other.list_jobs()] == []


def test_since_takes_durations_and_times() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert jobs_cli.since_of("90m", now) == now - timedelta(minutes=90)
    assert jobs_cli.since_of("2d", now) == now - timedelta(days=2)
    assert jobs_cli.since_of("2026-12-01T00:00:00") == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="--since takes"):
        jobs_cli.since_of("yesterday")


def test_a_listed_job_prints_as_one_line() -> None:
    job = Job(
        request_id="r1",
        status="FAILED",
        error="media not found",
        submitted_at=datetime(2026, 12, 3, 10, tzinfo=UTC),
    )
    assert jobs_cli.line_of(job) == "2026-12-03T10:00:00+00:00\tFAILED\tr1\tmedia not found"
