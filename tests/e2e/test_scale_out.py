"""Two transcriber processes in one consumer group share the work."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from stt_common.job_store import JobStore
from stt_testing import kafka_tools, processes
from tests.e2e.conftest import Stack
from tests.e2e.seed_client import poll

pytestmark = [pytest.mark.infra, pytest.mark.e2e]


async def test_two_transcribers_share_the_work(stack: Stack, infra: Any) -> None:
    second = stack.add_transcriber("transcriber-2")
    await asyncio.to_thread(second.wait_for_log, "ready", 120)
    bootstrap, group = stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_TRANSCRIBER_GROUP"]
    await kafka_tools.wait_for_members(bootstrap, group, len(stack.transcribers))

    partitions = int(stack.env["KAFKA_TOPIC_PARTITIONS"])
    rids = kafka_tools.ids_per_partition("share-" + uuid.uuid4().hex[:4], partitions, 2)
    headers = {"X-API-Key": processes.API_KEY}
    async with httpx.AsyncClient(base_url=stack.api.url, headers=headers) as http:
        for rid in rids:
            body = {
                "request_id": rid,
                "media_url": f"{stack.media.url}/english.wav",
                "language": "en",
            }
            assert (await http.post("/api/v1/transcribe", json=body)).status_code == 202
    results = await asyncio.gather(
        *(asyncio.to_thread(poll, stack.api.url, rid, processes.API_KEY, 240) for rid in rids)
    )
    assert [r["status"] for r in results] == ["COMPLETED"] * len(rids), results

    redis = Redis(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    store = JobStore(redis, 3600)
    try:
        workers = {(await store.get(rid)).worker for rid in rids}  # type: ignore[union-attr]
    finally:
        await redis.aclose()
    assert len(workers) == 2, workers
