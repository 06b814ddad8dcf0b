"""The API in this process: `create_app(settings)` through `httpx.ASGITransport`, its routes,
guard and job store (Lua on fakeredis) real, Kafka a fake publisher (tests/harness/fakes.py).

The fast tier's proof of the wiring; the same contract against the real servers is
tests/api/test_transcribe.py and its neighbours."""

from __future__ import annotations

import httpx
import pytest

from stt_common.job_store import job_key
from stt_common.messages import JobRecord, JobStatus, Source
from stt_testing.fakes import InProcessApi
from tests.api import in_process
from tests.api.in_process import KEY

api = in_process.api  # the in-process fixtures, over the conftest's real-process `api`
client = in_process.client


def job(request_id: str) -> dict[str, str]:
    return {"request_id": request_id, "media_url": "https://media.example/a.mp3", "language": "vi"}


async def test_submit_stores_the_job_and_publishes_its_event(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    resp = await client.post("/api/v1/transcribe", json=job("ip-1"))
    assert resp.status_code == 202
    body = resp.json()
    assert (body["request_id"], body["status"]) == ("ip-1", "PROCESSING")
    assert body["message"] == "Job submitted successfully"
    assert resp.headers["Retry-After"].isdigit()
    [(event, _trace)] = api.publisher.published
    assert (event.request_id, event.language, event.source) == ("ip-1", "vi", Source.API)
    # Confirmed: the full TTL, not STT_SUBMIT_TTL_BEFORE_PUBLISH.
    ttl = await api.redis.ttl(job_key("ip-1"))
    assert ttl > api.wiring.settings.api.submit_ttl_before_publish


async def test_a_known_request_id_publishes_nothing_new(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    first = await client.post("/api/v1/transcribe", json=job("ip-2"))
    again = await client.post("/api/v1/transcribe", json=job("ip-2"))
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["message"] == "Transcription in progress"  # the current status
    assert len(api.publisher.published) == 1


async def test_kafka_refusing_means_503_and_no_job(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    api.publisher.refuse = True
    resp = await client.post("/api/v1/transcribe", json=job("ip-3"))
    assert resp.status_code == 503
    assert "retry later" in resp.json()["detail"]
    assert not await api.redis.exists(job_key("ip-3"))
    assert (await client.get("/api/v1/transcribe/ip-3")).status_code == 404


async def test_the_guard_reads_the_keys_from_the_wiring(api: InProcessApi) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as anonymous:
        missing = await anonymous.get("/api/v1/transcribe/ip-4")
        wrong = await anonymous.get("/api/v1/transcribe/ip-4", headers={"X-API-Key": "nope"})
        health = await anonymous.get("/health")
    assert (missing.status_code, wrong.status_code, health.status_code) == (401, 401, 200)
    assert missing.json()["detail"] == "Missing X-API-Key header"


async def test_poll_of_a_processing_job_carries_the_hint(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/transcribe", json=job("ip-5"))
    resp = await client.get("/api/v1/transcribe/ip-5")
    assert resp.status_code == 200
    assert resp.json()["poll_after_seconds"] == 2.0  # not probed yet
    assert resp.headers["Retry-After"] == "2"


async def test_ten_polls_of_a_completed_job_teach_the_advisor_once(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    done = JobRecord(
        request_id="ip-6",
        status=JobStatus.COMPLETED,
        stage="done",
        duration=60.0,
        processing_time=30.0,
        transcription="xin chào",
    )
    await api.wiring.job_store.apply(done, now=done.updated_at.timestamp())
    before = api.wiring.poll_advisor.rtf
    for _ in range(10):
        resp = await client.get("/api/v1/transcribe/ip-6")
        assert resp.json()["status"] == "COMPLETED"
        assert "Retry-After" not in resp.headers
    smoothing = 0.2
    assert api.wiring.poll_advisor.rtf == pytest.approx(before + smoothing * (0.5 - before))
    text = await client.get("/api/v1/transcribe/ip-6", params={"format": "txt"})
    assert text.text.strip() == "xin chào"


async def test_delete_forgets_the_job_and_tombstones_it(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    await client.post("/api/v1/transcribe", json=job("ip-7"))
    assert (await client.delete("/api/v1/transcribe/ip-7")).status_code == 204
    assert api.publisher.forgotten == ["ip-7"]
    assert (await client.get("/api/v1/transcribe/ip-7")).status_code == 404
    assert (await client.delete("/api/v1/transcribe/ip-7")).status_code == 404


async def test_ready_asks_the_wired_store_and_publisher(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    assert (await client.get("/ready")).json() == {
        "status": "ready",
        "redis": "ok",
        "kafka": "ok",
    }


async def test_models_names_the_served_model(client: httpx.AsyncClient, api: InProcessApi) -> None:
    listed = (await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})).json()
    assert [m["id"] for m in listed["data"]] == [api.wiring.served_model]


async def test_a_scrape_pings_the_wired_redis(client: httpx.AsyncClient) -> None:
    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert 'stt_dependency_up{dependency="redis"} 1.0' in scrape.text
