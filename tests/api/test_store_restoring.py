"""While Redis is being restored (its epoch marker gone or RESTORING, stt_common.store_epoch),
the API never answers a false 404 and starts no job: 503 + Retry-After, in the JSON error
shape. Jobs already back answer as usual. Fast tier (fakeredis); through the real stack with
Redis wiped: tests/faults/test_truth.py."""

from __future__ import annotations

import httpx
import pytest

from stt_common import store_epoch
from stt_testing.fakes import InProcessApi
from tests.api import in_process
from tests.api.in_process import job

api = in_process.api  # the in-process fixtures, over the conftest's real-process `api`
client = in_process.client


def assert_restoring(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.json() == {"detail": store_epoch.RESTORING_DETAIL}
    assert resp.headers["Retry-After"] == store_epoch.RESTORE_RETRY_AFTER


@pytest.mark.parametrize("state", ["lost", "restoring"])
async def test_a_store_being_restored_answers_503_not_404_and_takes_no_job(
    client: httpx.AsyncClient, api: InProcessApi, state: str
) -> None:
    assert (await client.post("/api/v1/transcribe", json=job("r-1"))).status_code == 202
    marker = store_epoch.epoch_key(api.wiring.settings.kafka.topic_status)
    if state == "lost":
        await api.redis.delete(marker)
    else:
        await api.redis.hset(marker, "state", "restoring")

    assert_restoring(await client.get("/api/v1/transcribe/r-unknown"))
    assert_restoring(await client.delete("/api/v1/transcribe/r-unknown"))
    refused = await client.post("/api/v1/transcribe", json=job("r-2"))
    assert_restoring(refused)
    assert refused.headers["X-Submit-Outcome"] == "refused"  # nothing was queued
    assert [e.request_id for e, _ in api.publisher.published] == ["r-1"]  # no new event
    # A job that is back answers as usual.
    assert (await client.get("/api/v1/transcribe/r-1")).json()["status"] == "PROCESSING"

    await store_epoch.mark_ready(api.redis, api.wiring.settings.kafka.topic_status)
    assert (await client.get("/api/v1/transcribe/r-unknown")).status_code == 404
    assert (await client.post("/api/v1/transcribe", json=job("r-2"))).status_code == 202
