"""W3C trace context from the HTTP request through the submit and results topics, and into the
log lines of the API, the transcriber and the projector (real processes; fake engine)."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka.structs import ConsumerRecord

from stt_common import tracing
from stt_testing import kafka_tools, processes, speech

pytestmark = pytest.mark.infra
HEADERS = {"X-API-Key": processes.API_KEY}


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    """Overrides the package's: the workers run the fake engine (no model needed)."""
    prefix = "trc" + uuid.uuid4().hex[:6]
    return processes.service_env(infra.env(), prefix=prefix, STT_ENGINE="fake")


@pytest.fixture(scope="module")
def workers(
    api: processes.Api, api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[processes.Service, processes.Service]]:
    workdir = tmp_path_factory.mktemp("trace")
    # DEBUG: the projector logs each event it applies (with request_id) only at debug level.
    projector = processes.worker("projector", api_env | {"STT_LOG_LEVEL": "DEBUG"}, workdir)
    transcriber = processes.worker("transcriber", api_env, workdir)
    projector.start()
    transcriber.start()
    try:
        projector.wait_for_log("projector ready")
        transcriber.wait_for_log("ready")
        yield projector, transcriber
    finally:
        transcriber.stop()
        projector.stop()


@pytest.fixture(scope="module")
def media_url(api: processes.Api, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A short spoken clip, put in the bucket through the upload endpoint."""
    clip = speech.make_speech("hello there", "en-us", tmp_path_factory.mktemp("clip") / "a.wav")
    resp = httpx.post(
        f"{api.url}/api/v1/uploads",
        content=clip.read_bytes(),
        params={"filename": clip.name},
        headers=HEADERS | {"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    url: str = resp.json()["media_url"]
    return url


async def records_of(env: dict[str, str], topic: str, rid: str) -> list[ConsumerRecord[Any, Any]]:
    return await kafka_tools.keyed_records(env["KAFKA_BOOTSTRAP_SERVERS"], env[topic], {rid})


def wait_completed(api: processes.Api, rid: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{api.url}/api/v1/transcribe/{rid}", headers=HEADERS, timeout=10
        ).json()
        if body.get("status") in ("COMPLETED", "FAILED"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"{rid} not done after {timeout}s")


def trace_ids_logged(service: processes.Service, rid: str) -> set[str | None]:
    lines = [json.loads(line) for line in service.log_text().splitlines() if line.startswith("{")]
    return {line.get("trace_id") for line in lines if line.get("request_id") == rid}


def context_of(record: ConsumerRecord[Any, Any]) -> tracing.TraceContext:
    context = tracing.from_kafka(record.headers)
    assert context is not None, f"no traceparent on {record.topic}: {record.headers}"
    return context


async def test_the_callers_trace_reaches_every_event_and_log_line(
    api: processes.Api,
    api_env: dict[str, str],
    workers: tuple[processes.Service, processes.Service],
    media_url: str,
) -> None:
    projector, transcriber = workers
    sent = tracing.TraceContext(secrets.token_hex(16), secrets.token_hex(8))
    rid = "trc-" + uuid.uuid4().hex[:12]
    job = {"request_id": rid, "media_url": media_url, "language": "en"}
    resp = httpx.post(
        f"{api.url}/api/v1/transcribe",
        json=job,
        headers=HEADERS | {"traceparent": sent.header()},
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    assert wait_completed(api, rid)["status"] == "COMPLETED"

    (submit,) = await records_of(api_env, "KAFKA_TOPIC_SUBMIT", rid)
    api_span = context_of(submit)
    # The same trace; the API's own span is the parent of what it publishes.
    assert api_span.trace_id == sent.trace_id and api_span.span_id != sent.span_id

    results = await records_of(api_env, "KAFKA_TOPIC_RESULTS", rid)
    assert len(results) >= 2  # progress events and the result
    assert json.loads(results[-1].value)["status"] == "COMPLETED"
    spans = {context_of(r) for r in results}
    (worker_span,) = spans  # one transcriber span sends them all
    assert worker_span.trace_id == sent.trace_id
    assert worker_span.span_id not in (sent.span_id, api_span.span_id)

    projector.wait_for_log(f'COMPLETED gen=1 -> applied", "request_id": "{rid}"', timeout=10)
    for service in (api, transcriber, projector):
        assert trace_ids_logged(service, rid) == {sent.trace_id}, service.name


@pytest.mark.parametrize("given", [None, "00-not-a-trace-01"], ids=["absent", "malformed"])
async def test_without_a_valid_traceparent_the_api_starts_a_trace(
    api: processes.Api,
    api_env: dict[str, str],
    workers: tuple[processes.Service, processes.Service],
    media_url: str,
    given: str | None,
) -> None:
    rid = "trc-" + uuid.uuid4().hex[:12]
    headers = HEADERS | ({"traceparent": given} if given else {})
    job = {"request_id": rid, "media_url": media_url, "language": "en"}
    resp = httpx.post(f"{api.url}/api/v1/transcribe", json=job, headers=headers, timeout=10)
    assert resp.status_code == 202, resp.text
    wait_completed(api, rid)
    (submit,) = await records_of(api_env, "KAFKA_TOPIC_SUBMIT", rid)
    started = context_of(submit)
    results = await records_of(api_env, "KAFKA_TOPIC_RESULTS", rid)
    assert {context_of(r).trace_id for r in results} == {started.trace_id}
    assert trace_ids_logged(api, rid) == {started.trace_id}
