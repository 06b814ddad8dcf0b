"""What `stt transcribe` needs of the clients: `upload` (fake transports, then the real API) and
`wait`'s progress hooks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from stt_client import ApiError, AsyncSttClient, Job, SttClient
from stt_testing import processes

URL = "minio://stt-media/uploads/abc/talk.wav"


def recording(*statuses: int) -> tuple[httpx.MockTransport, list[httpx.Request], list[bytes]]:
    """Answers `statuses` in order (201 carries a media_url); keeps each request and its body."""
    seen: list[httpx.Request] = []
    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        bodies.append(request.read())
        status = statuses[min(len(seen), len(statuses)) - 1]
        if status == 201:
            return httpx.Response(201, json={"media_url": URL, "size": len(bodies[-1])})
        return httpx.Response(status, json={"detail": f"status {status}"})

    return httpx.MockTransport(handle), seen, bodies


@pytest.fixture
def talk(tmp_path: Path) -> Path:
    path = tmp_path / "talk.wav"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 7))  # more than one read chunk
    return path


def test_upload_sends_the_raw_file_and_starts_again_on_retry(talk: Path) -> None:
    transport, seen, bodies = recording(503, 201)
    with SttClient("http://stt", "k", transport=transport) as stt:
        assert stt.upload(talk) == URL
    assert bodies == [talk.read_bytes()] * 2  # the retry resent every byte
    request = seen[-1]
    assert request.url.path == "/api/v1/uploads" and request.url.params["filename"] == "talk.wav"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Content-Length"] == str(talk.stat().st_size)


async def test_async_upload_sends_the_raw_file_and_starts_again_on_retry(talk: Path) -> None:
    seen: list[bytes] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(await request.aread())
        if len(seen) == 1:
            return httpx.Response(502, json={"detail": "bad gateway"})
        return httpx.Response(201, json={"media_url": URL, "size": len(seen[-1])})

    transport = httpx.MockTransport(handle)
    async with AsyncSttClient("http://stt", "k", transport=transport) as stt:
        assert await stt.upload(talk) == URL
    assert seen == [talk.read_bytes()] * 2


@pytest.mark.parametrize("status", [413, 404])
def test_refusals_are_api_errors(talk: Path, status: int) -> None:
    transport, seen, _ = recording(status)
    with SttClient("http://stt", "k", transport=transport) as stt, pytest.raises(ApiError) as err:
        stt.upload(talk)
    assert err.value.status_code == status and len(seen) == 1
    if status == 404:
        assert "uploads" in str(err.value)


@pytest.mark.infra
async def test_both_clients_upload_to_the_api(api: processes.Api, talk: Path) -> None:
    with SttClient(api.url, processes.API_KEY) as stt:
        url = stt.upload(talk)
    async with AsyncSttClient(api.url, processes.API_KEY) as astt:
        other = await astt.upload(talk)
    assert url.startswith("minio://") and url.endswith("/talk.wav") and url != other


def test_wait_shows_every_state_and_polls_at_least_as_often_as_asked() -> None:
    bodies = [
        {
            "status": "PROCESSING",
            "stage": "transcribing",
            "progress": 0.4,
            "poll_after_seconds": 30,
        },
        {"status": "COMPLETED", "stage": "done", "progress": 1.0, "transcription": "hi"},
    ]
    answers = iter(bodies)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"request_id": "j1", "message": "m"} | next(answers))

    seen: list[Job] = []
    started = time.monotonic()
    with SttClient("http://stt", "k", transport=httpx.MockTransport(handle)) as stt:
        job = stt.wait("j1", deadline=10, on_update=seen.append, max_interval=0.2)
    assert time.monotonic() - started < 2  # not the 30 s the server suggested
    assert [(j.stage, j.progress) for j in seen] == [("transcribing", 0.4), ("done", 1.0)]
    assert job is seen[-1]
