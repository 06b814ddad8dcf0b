"""The seed's HTTP contract, against the real API process, Redis and Kafka."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import httpx
import pytest

from stt_common.messages import Source, SubmitEvent
from stt_testing import processes
from tests.api.conftest import submit_events

pytestmark = pytest.mark.infra


def new_id() -> str:
    return str(uuid.uuid4().int)[:19]


def job(request_id: str, **extra: str) -> dict[str, str]:
    return {
        "request_id": request_id,
        "media_url": "http://minio-host/bucket/audio.mp3?token=x",
    } | extra


async def test_submit_answers_202_with_the_seed_body(client: httpx.AsyncClient) -> None:
    rid = new_id()
    resp = await client.post("/api/v1/transcribe", json=job(rid, language="vi"))
    assert resp.status_code == 202
    body = resp.json()
    assert body["request_id"] == rid
    assert body["status"] == "PROCESSING"
    assert body["message"] == "Job submitted successfully"
    assert resp.headers["Retry-After"].isdigit()


async def test_submit_publishes_one_event_keyed_by_request_id(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = new_id()
    await client.post("/api/v1/transcribe", json=job(rid))
    events = await submit_events(api_env, rid)
    assert len(events) == 1
    event = SubmitEvent.model_validate_json(events[0])
    assert (event.request_id, event.language, event.source) == (rid, "vi", Source.API)
    assert event.generation == 1


async def test_poll_of_a_processing_job(client: httpx.AsyncClient) -> None:
    rid = new_id()
    await client.post("/api/v1/transcribe", json=job(rid))
    resp = await client.get(f"/api/v1/transcribe/{rid}")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["request_id"], body["status"]) == (rid, "PROCESSING")
    assert body["message"] == "Transcription in progress"
    assert "transcription" not in body and "error" not in body


async def test_duplicate_submit_returns_the_current_status_and_publishes_nothing(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = new_id()
    first = await client.post("/api/v1/transcribe", json=job(rid))
    again = await client.post("/api/v1/transcribe", json=job(rid, language="en"))
    assert first.status_code == again.status_code == 202
    assert again.json()["status"] == "PROCESSING"
    assert again.json()["message"] == "Transcription in progress"
    assert len(await submit_events(api_env, rid)) == 1


async def test_fifty_concurrent_duplicates_make_one_job_and_one_event(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = new_id()
    responses = await asyncio.gather(
        *(client.post("/api/v1/transcribe", json=job(rid)) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {202}
    messages = [r.json()["message"] for r in responses]
    assert messages.count("Job submitted successfully") == 1
    assert len(await submit_events(api_env, rid)) == 1


async def test_unknown_job_is_404_with_the_seed_detail(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/transcribe/7577034049470926087-nope")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Job not found: 7577034049470926087-nope"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
async def test_missing_or_wrong_key_is_401_json(
    api: processes.Api, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as anonymous:
        for resp in (
            await anonymous.post("/api/v1/transcribe", json=job(new_id())),
            await anonymous.get("/api/v1/transcribe/x1"),
        ):
            assert resp.status_code == 401
            assert isinstance(resp.json()["detail"], str)


async def test_health_and_docs_need_no_key(api: processes.Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/health")).json() == {"status": "ok"}
        docs = await anonymous.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        spec = (await anonymous.get("/openapi.json")).json()
        assert "/api/v1/transcribe/{request_id}" in spec["paths"]
        # The key is declared, so /docs offers "Authorize" and sends X-API-Key on every call.
        scheme = spec["components"]["securitySchemes"]["APIKeyHeader"]
        assert (scheme["in"], scheme["name"]) == ("header", "X-API-Key")
        assert spec["paths"]["/api/v1/transcribe"]["post"]["security"] == [{"APIKeyHeader": []}]
        assert "security" not in spec["paths"]["/health"]["get"]
        ready = await anonymous.get("/ready")
        assert ready.status_code == 200 and ready.json()["kafka"] == "ok"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"media_url": "http://h/a.mp3"}, "request_id"),
        ({"request_id": "a/b", "media_url": "http://h/a.mp3"}, "request_id"),
        ({"request_id": "ok1"}, "media_url"),
        ({"request_id": "ok1", "media_url": "gopher://h/a"}, "media_url"),
        ({"request_id": "ok1", "media_url": "http://h/a.mp3", "language": "xx"}, "language"),
        ({"request_id": 5, "media_url": "http://h/a.mp3"}, "request_id"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    resp = await client.post("/api/v1/transcribe", json=body)
    assert resp.status_code == 422
    assert field in resp.json()["detail"]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/transcribe", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422
    assert "detail" in resp.json()


async def test_kafka_down_means_503_and_no_orphan_record(
    api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = api_env | {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{processes.free_port()}",
        "KAFKA_PUBLISH_TIMEOUT": "2",
    }
    broken = processes.api(env, tmp_path_factory.mktemp("api-nokafka")).start().wait_ready()
    try:
        async with httpx.AsyncClient(
            base_url=broken.url, headers={"X-API-Key": processes.API_KEY}, timeout=30
        ) as http:
            rid = new_id()
            resp = await http.post("/api/v1/transcribe", json=job(rid))
            assert resp.status_code == 503
            assert "Kafka" in resp.json()["detail"]
            assert (await http.get(f"/api/v1/transcribe/{rid}")).status_code == 404
    finally:
        broken.stop()


def test_api_refuses_to_start_without_keys(
    api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = api_env | {"STT_API_KEYS": ""}
    done = subprocess.run(
        [*processes.STT, "api", "--port", str(processes.free_port())],
        env=env,
        cwd=tmp_path_factory.mktemp("api-nokeys"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert b"STT_API_KEYS" in done.stderr


def test_json_logs_do_not_contain_the_key(api: processes.Api) -> None:
    text = api.log_text()
    assert processes.API_KEY not in text
    for line in text.splitlines():
        if line.startswith("{"):
            json.loads(line)
