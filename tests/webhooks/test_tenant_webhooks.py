"""Webhooks per tenant (real Kafka, Redis and services, the fake engine): the same request_id
from two tenants is two jobs, so two webhooks, each with its own tenant and metadata."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from stt_client import verify_webhook
from stt_common.messages import SubmitEvent
from tests.webhooks.conftest import SECRET, HookStack

pytestmark = pytest.mark.infra


async def test_same_request_id_from_two_tenants_gets_two_webhooks(hooks: HookStack) -> None:
    rid = f"hook-tenant-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=hooks.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        for tenant in ("ta", "tb"):
            event = SubmitEvent(
                request_id=rid,
                media_url=f"{hooks.media.url}/hello.wav",
                language="en",
                tenant=tenant,
                metadata={"team": tenant},
                callback_url=f"{hooks.receiver.url}/tenant/{tenant}/{rid}",
            )
            await producer.send_and_wait(
                hooks.env["KAFKA_TOPIC_SUBMIT"],
                event.model_dump_json(exclude_none=True).encode(),
                key=event.job_id.encode(),
            )
    finally:
        await producer.stop()
    for tenant in ("ta", "tb"):
        (hit,) = hooks.receiver.wait_for(f"/tenant/{tenant}/{rid}", timeout=60)
        assert verify_webhook(hit.body, hit.headers["X-STT-Signature"], SECRET)
        body = json.loads(hit.body)
        assert body["request_id"] == rid and body["status"] == "COMPLETED", body
        assert (body["tenant"], body["metadata"]) == (tenant, {"team": tenant})
    # Neither is the default tenant's job.
    assert hooks.get(rid) == {"detail": f"Job not found: {rid}"}
