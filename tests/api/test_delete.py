"""`DELETE /api/v1/transcribe/{id}` against the real API process and Redis."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from stt_common.cancellation import cancel_key
from tests.api import job_records

pytestmark = pytest.mark.infra
MEDIA = "http://minio-host/bucket/audio.mp3"


def new_id() -> str:
    return "del-" + uuid.uuid4().hex[:12]


async def test_delete_forgets_the_job_and_leaves_a_cancel_marker(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = new_id()
    await client.post("/api/v1/transcribe", json={"request_id": rid, "media_url": MEDIA})
    resp = await client.delete(f"/api/v1/transcribe/{rid}")
    assert resp.status_code == 204
    assert resp.content == b""
    assert (await client.get(f"/api/v1/transcribe/{rid}")).status_code == 404
    async with job_records.store(api_env) as store:
        assert await store.redis.exists(cancel_key(rid))
        assert 0 < await store.redis.ttl(cancel_key(rid)) <= store.ttl


async def test_deleting_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.delete(f"/api/v1/transcribe/{new_id()}")
    assert resp.status_code == 404
    assert resp.json()["detail"].startswith("Job not found")


async def test_deleting_twice_is_404_the_second_time(client: httpx.AsyncClient) -> None:
    rid = new_id()
    await client.post("/api/v1/transcribe", json={"request_id": rid, "media_url": MEDIA})
    assert (await client.delete(f"/api/v1/transcribe/{rid}")).status_code == 204
    assert (await client.delete(f"/api/v1/transcribe/{rid}")).status_code == 404


async def test_delete_needs_the_key(client: httpx.AsyncClient) -> None:
    resp = await client.delete(f"/api/v1/transcribe/{new_id()}", headers={"X-API-Key": "wrong"})
    assert resp.status_code == 401


async def test_the_id_can_be_submitted_again_after_a_delete(client: httpx.AsyncClient) -> None:
    rid = new_id()
    body = {"request_id": rid, "media_url": MEDIA}
    await client.post("/api/v1/transcribe", json=body)
    await client.delete(f"/api/v1/transcribe/{rid}")
    resp = await client.post("/api/v1/transcribe", json=body)
    assert resp.status_code == 202
    assert resp.json()["message"] == "Job submitted successfully"
    assert (await client.get(f"/api/v1/transcribe/{rid}")).json()["status"] == "PROCESSING"


async def test_a_completed_job_can_be_deleted(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = new_id()
    async with job_records.store(api_env) as store:
        await store.apply(job_records.completed(rid, []), time.time())
    assert (await client.get(f"/api/v1/transcribe/{rid}")).status_code == 200
    assert (await client.delete(f"/api/v1/transcribe/{rid}")).status_code == 204
    assert (await client.get(f"/api/v1/transcribe/{rid}")).status_code == 404
