"""Webhooks end to end: API -> transcriber (fake engine) -> results -> `stt webhooks` -> a local
receiver; failures in the dead-letter topic; a hanging receiver delays nothing else."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from stt_client import verify_webhook
from stt_common.messages import ResultEvent
from stt_testing import kafka_tools
from tests.webhooks.conftest import RETRY_SECONDS, SECRET, HookStack

pytestmark = pytest.mark.infra


def new_id(name: str) -> str:
    return f"hook-{name}-{uuid.uuid4().hex[:8]}"


async def dead_letter(
    env: dict[str, str], rid: str, timeout: float
) -> tuple[bytes, dict[str, str]]:
    """The dead letter keyed `rid` (value, headers), waiting up to `timeout` seconds for it."""
    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_DLQ"], {rid}, wait=timeout, until=1
    )
    for record in records:
        if record.value is not None:
            return record.value, {k: v.decode() for k, v in record.headers}
    raise TimeoutError(f"no dead letter for {rid} within {timeout}s")


def test_completed_job_gets_one_signed_post_with_the_get_body(hooks: HookStack) -> None:
    rid = new_id("ok")
    hooks.submit(rid, f"{hooks.receiver.url}/ok/{rid}?token=abc")
    (hit,) = hooks.receiver.wait_for(f"/ok/{rid}?token=abc")
    assert verify_webhook(hit.body, hit.headers["X-STT-Signature"], SECRET)
    assert not verify_webhook(hit.body, hit.headers["X-STT-Signature"], "wrong-secret")
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["X-STT-Request-Id"] == rid
    body = json.loads(hit.body)
    assert body["status"] == "COMPLETED" and body["transcription"]
    hooks.wait_status(rid)  # the projector is a separate group: it may be a moment behind
    polled = hooks.get(rid)
    assert body == polled  # the same JSON a poll returns
    assert "callback_url" not in polled and "token" not in json.dumps(polled)
    time.sleep(1.5)
    assert len(hooks.receiver.to(f"/ok/{rid}?token=abc")) == 1, "delivered more than once"


def test_receiver_failing_twice_gets_it_on_the_third_try(hooks: HookStack) -> None:
    rid = new_id("flaky")
    path = f"/flaky/2/{rid}"
    hooks.submit(rid, hooks.receiver.url + path)
    hits = hooks.receiver.wait_for(path, count=3)
    assert [h.headers["X-STT-Delivery-Attempt"] for h in hits] == ["1", "2", "3"]
    assert all(verify_webhook(h.body, h.headers["X-STT-Signature"], SECRET) for h in hits)
    assert json.loads(hits[-1].body)["status"] == "COMPLETED"
    time.sleep(1)
    assert len(hooks.receiver.to(path)) == 3  # 200 on the third: no more tries


async def test_receiver_that_always_fails_is_dead_lettered_after_the_window(
    hooks: HookStack,
) -> None:
    rid = new_id("fail")
    started = time.monotonic()
    hooks.submit(rid, f"{hooks.receiver.url}/fail/{rid}")
    value, headers = await dead_letter(hooks.env, rid, timeout=RETRY_SECONDS + 15)
    assert time.monotonic() - started >= RETRY_SECONDS - 1  # retried for the window first
    assert headers["stt-error-type"] == "webhook_failed"
    assert headers["stt-consumer-group"] == hooks.env["KAFKA_WEBHOOKS_GROUP"]
    assert headers["stt-origin-topic"] == hooks.env["KAFKA_TOPIC_RESULTS"]
    assert "gave up" in headers["stt-error-message"] and "500" in headers["stt-error-message"]
    assert len(hooks.receiver.to(f"/fail/{rid}")) >= 3
    assert ResultEvent.model_validate_json(value).status == "COMPLETED"  # the job itself is fine
    assert hooks.get(rid)["status"] == "COMPLETED"


async def test_private_callback_not_allow_listed_is_refused_and_dead_lettered(
    hooks: HookStack,
) -> None:
    rid = new_id("ssrf")
    hooks.submit(rid, "http://10.0.0.1/hook")
    _, headers = await dead_letter(hooks.env, rid, timeout=20)
    assert headers["stt-error-type"] == "webhook_failed"
    assert headers["stt-attempt"] == "1"  # permanent: no retries
    message = headers["stt-error-message"]
    assert message.startswith("Refused") and "10.0.0.1 is a private address" in message


def test_hanging_receiver_delays_neither_jobs_nor_other_webhooks(hooks: HookStack) -> None:
    slow = new_id("slow")
    hooks.submit(slow, f"{hooks.receiver.url}/slow/10/{slow}")
    (hanging,) = hooks.receiver.wait_for(f"/slow/10/{slow}")
    fast = new_id("fast")
    hooks.submit(fast, f"{hooks.receiver.url}/ok/{fast}")
    assert hooks.wait_status(fast) < 5
    (delivered,) = hooks.receiver.wait_for(f"/ok/{fast}", timeout=5)
    assert hanging.finished is None, "the slow receiver answered before the check"
    assert delivered.finished is not None and delivered.arrived > hanging.arrived
