"""`stt_client` against fake transports (retries, hints) and the real API and stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from stt_client import (
    ApiError,
    AsyncSttClient,
    AuthenticationError,
    DeadlineExceeded,
    JobFailed,
    JobNotFound,
    SttClient,
    Unavailable,
    _core,
)
from stt_client._core import JobOptions, default_request_id
from stt_testing import processes
from tests.e2e.conftest import Stack

MEDIA = "http://minio-host/bucket/audio.mp3"


def new_id() -> str:
    return "cli-" + uuid.uuid4().hex[:12]


def job_body(status: str, **extra: object) -> dict[str, object]:
    return {"request_id": "j1", "status": status, "message": "m"} | extra


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[str]]:
    """A transport that gives `answers` in order (the last one forever) and logs requests."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(f"{request.method} {request.url.path}")
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def fake(*answers: httpx.Response | Exception) -> tuple[SttClient, list[str]]:
    transport, seen = scripted(*answers)
    return SttClient("http://stt", "k", transport=transport), seen


# ---- without a server --------------------------------------------------------------------------


def test_default_request_id_is_deterministic_and_valid() -> None:
    a = default_request_id("http://h/a.mp3", "vi")
    assert a == default_request_id("http://h/a.mp3", "vi")
    assert a != default_request_id("http://h/a.mp3", "en")
    assert a.startswith("sdk-") and len(a) <= 128 and a.replace("-", "").isalnum()


def test_5xx_and_connection_errors_are_retried_with_backoff() -> None:
    client, seen = fake(
        httpx.Response(503, json={"detail": "Kafka down"}),
        httpx.ConnectError("refused"),
        httpx.Response(202, json=job_body("PROCESSING")),
    )
    assert client.submit("j1", MEDIA).status == "PROCESSING"
    assert len(seen) == 3


def test_retries_are_bounded() -> None:
    client, seen = fake(httpx.Response(502, text="bad gateway"))
    client.max_retries = 1
    with pytest.raises(Unavailable):
        client.get("j1")
    assert len(seen) == 2


def test_errors_that_are_not_transient_are_raised_at_once() -> None:
    for response, error in [
        (httpx.Response(401, json={"detail": "Invalid API key"}), AuthenticationError),
        (httpx.Response(404, json={"detail": "Job not found: j1"}), JobNotFound),
        (httpx.Response(422, json={"detail": "media_url: bad"}), ApiError),
    ]:
        client, seen = fake(response)
        with pytest.raises(error):
            client.get("j1")
        assert len(seen) == 1


def test_wait_follows_the_servers_hint() -> None:
    client, seen = fake(
        httpx.Response(200, json=job_body("PROCESSING", poll_after_seconds=0.3)),
        httpx.Response(200, json=job_body("COMPLETED", transcription="hi")),
    )
    started = time.monotonic()
    assert client.wait("j1", deadline=5).transcription == "hi"
    assert 0.25 <= time.monotonic() - started < 1.5
    assert seen == ["GET /api/v1/transcribe/j1"] * 2


def test_a_poll_near_the_deadline_bounds_the_servers_hold_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server holds a plain poll up to 8 s near the job's ETA (STT_POLL_HOLD_SECONDS); with
    less than that left to the caller's deadline, the poll asks for at most what is left."""
    queries: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.query.decode())
        return httpx.Response(200, json=job_body("PROCESSING", poll_after_seconds=0.2))

    monkeypatch.setattr(_core, "SERVER_HOLD_MAX", 1.0)  # a shorter scale, same rule
    client = SttClient("http://stt", "k", transport=httpx.MockTransport(handle))
    with pytest.raises(DeadlineExceeded):
        client.wait("j1", deadline=1.5)
    assert queries[0] == ""  # far from the deadline: the server's own hold applies
    assert queries[-1].startswith("wait=")
    assert 0.0 <= float(queries[-1].removeprefix("wait=")) < 1.0


def test_wait_raises_job_failed_with_the_servers_reason() -> None:
    failed = job_body("FAILED", error="Failed to download audio file: 403 Forbidden")
    client, _ = fake(httpx.Response(200, json=failed))
    with pytest.raises(JobFailed) as caught:
        client.wait("j1")
    assert caught.value.error == "Failed to download audio file: 403 Forbidden"


def test_wait_gives_up_at_the_deadline_even_while_the_server_is_down() -> None:
    client, _ = fake(httpx.ConnectError("refused"))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        client.wait("j1", deadline=0.8)
    assert 0.7 <= time.monotonic() - started < 2.0
    assert caught.value.job is None


def test_the_client_needs_neither_stt_common_nor_the_services() -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'stt_common', 'stt_api', 'stt_transcriber',\n"
        "                'stt_projector', 'stt_cli', 'fastapi', 'aiokafka', 'redis'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import stt_client\n"
        "stt_client.SttClient('http://x', 'k').close()\n"
    )
    subprocess.run([sys.executable, "-c", blocker], check=True, timeout=30)


# ---- against the API process (no transcriber: jobs stay PROCESSING) ----------------------------


@pytest.mark.infra
def test_submit_get_and_deadline_against_the_api(api: processes.Api) -> None:
    rid = new_id()
    with SttClient(api.url, processes.API_KEY) as stt:
        job = stt.submit(rid, MEDIA, language="en")
        assert (job.request_id, job.status, job.poll_after_seconds) == (rid, "PROCESSING", 2.0)
        assert stt.submit(rid, MEDIA, language="en").status == "PROCESSING"  # idempotent
        assert stt.get(rid).status == "PROCESSING"
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            stt.wait(rid, deadline=1.0)
        assert 0.9 <= time.monotonic() - started < 3
        assert caught.value.job is not None and caught.value.job.status == "PROCESSING"
        with pytest.raises(JobNotFound):
            stt.get(new_id())
        stt.delete(rid)
        with pytest.raises(JobNotFound):
            stt.get(rid)


@pytest.mark.infra
@pytest.mark.parametrize(
    "call", [lambda c: c.get("x"), lambda c: c.submit("x", MEDIA)], ids=["get", "submit"]
)
def test_wrong_key_is_an_authentication_error(
    api: processes.Api, call: Callable[[SttClient], object]
) -> None:
    with SttClient(api.url, "wrong-key") as stt, pytest.raises(AuthenticationError):
        call(stt)


@pytest.mark.infra
async def test_async_client_against_the_api(api: processes.Api) -> None:
    rid = new_id()
    async with AsyncSttClient(api.url, processes.API_KEY) as stt:
        assert (await stt.submit(rid, MEDIA)).status == "PROCESSING"
        with pytest.raises(DeadlineExceeded):
            await stt.wait(rid, deadline=0.5)
    async with AsyncSttClient(api.url, "wrong-key") as stt:
        with pytest.raises(AuthenticationError):
            await stt.get(rid)


# ---- against the whole stack with the real model -----------------------------------------------


@pytest.mark.infra
@pytest.mark.e2e
def test_transcribe_a_clip_and_fetch_its_subtitles(stack: Stack) -> None:
    url = f"{stack.media.url}/english.wav?{new_id()}"
    with SttClient(stack.api.url, processes.API_KEY) as stt:
        job = stt.transcribe(url, language="en", deadline=120)
        assert job.status == "COMPLETED" and job.transcription and job.segments
        assert job.request_id == default_request_id(url, "en")
        again = stt.transcribe(url, language="en", deadline=10)  # same id: no second run
        assert again.transcription == job.transcription
        assert stack.media.hits[url.removeprefix(stack.media.url)] == 1
        assert stt.subtitles(job.request_id, "srt").startswith("1\n00:00:")


@pytest.mark.infra
@pytest.mark.e2e
async def test_a_forbidden_url_is_job_failed(stack: Stack) -> None:
    async with AsyncSttClient(stack.api.url, processes.API_KEY) as stt:
        with pytest.raises(JobFailed) as caught:
            await stt.transcribe(f"{stack.media.url}/forbidden/english.mp3?{new_id()}", deadline=60)
    assert caught.value.error == "Failed to download audio file: 403 Forbidden"
    assert caught.value.job.status == "FAILED"


def test_decoding_options_are_sent_only_when_asked_and_change_the_derived_id() -> None:
    bodies: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json=job_body("PROCESSING"))

    with SttClient("http://stt", "k", transport=httpx.MockTransport(handle)) as stt:
        stt.submit("j1", MEDIA, "en")
        stt.submit("j1", MEDIA, "en", prompt="Nguyễn", hotwords="Kafka", task="translate")
        stt.submit("j1", MEDIA, "en", word_timestamps=True)
    assert bodies[0] == {"request_id": "j1", "media_url": MEDIA, "language": "en"}
    assert bodies[1] == bodies[0] | {"prompt": "Nguyễn", "hotwords": "Kafka", "task": "translate"}
    assert bodies[2] == bodies[0] | {"word_timestamps": True}
    plain = default_request_id(MEDIA, "en")
    assert plain == default_request_id(MEDIA, "en", JobOptions())  # the ids of earlier versions
    translated = default_request_id(MEDIA, "en", JobOptions(task="translate"))
    assert translated != plain
    assert translated != default_request_id(MEDIA, "en", JobOptions(prompt="x", task="translate"))


async def test_priority_is_sent_only_when_asked_and_read_back() -> None:
    bodies: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json=job_body("PROCESSING", priority="batch"))

    with SttClient("http://stt", "k", transport=httpx.MockTransport(handle)) as stt:
        stt.submit("j1", MEDIA, "en")
        job = stt.submit("j1", MEDIA, "en", priority="batch")
    async with AsyncSttClient("http://stt", "k", transport=httpx.MockTransport(handle)) as astt:
        await astt.submit("j1", MEDIA, "en", priority="interactive")
    assert "priority" not in bodies[0]  # a server from before lanes gets the body it knew
    assert bodies[1]["priority"] == "batch" and bodies[2]["priority"] == "interactive"
    assert job.priority == "batch"
