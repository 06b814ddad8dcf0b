"""A 503 on submit says exactly what happened (stt_api.jobs, stt_api.unconfirmed): `refused`
leaves no job; `unknown` keeps the record, and a resubmit with the same request_id sends the
same event again and makes one job. Fast tier (fakeredis, fake publisher); with Kafka killed
during a burst of submits: tests/faults/test_truth.py."""

from __future__ import annotations

import httpx

from stt_api.jobs import OUTCOME_HEADER
from stt_testing.fakes import InProcessApi
from tests.api import in_process
from tests.api.in_process import job

api = in_process.api  # the in-process fixtures, over the conftest's real-process `api`
client = in_process.client

SUBMIT = "/api/v1/transcribe"


async def test_refused_means_no_job(client: httpx.AsyncClient, api: InProcessApi) -> None:
    api.publisher.refuse = True
    resp = await client.post(SUBMIT, json=job("o-1"))
    assert resp.status_code == 503
    assert resp.headers[OUTCOME_HEADER] == "refused"
    assert resp.headers["Retry-After"].isdigit()
    assert "not accepted" in resp.json()["detail"]
    assert (await client.get(f"{SUBMIT}/o-1")).status_code == 404


async def test_unknown_keeps_the_job_and_a_resubmit_sends_the_same_event_once(
    client: httpx.AsyncClient, api: InProcessApi
) -> None:
    api.publisher.unknown = True
    first = await client.post(SUBMIT, json=job("o-2"))
    assert first.status_code == 503
    assert first.headers[OUTCOME_HEADER] == "unknown"
    assert "resubmit with the same request_id" in first.json()["detail"]
    assert (await client.get(f"{SUBMIT}/o-2")).json()["status"] == "PROCESSING"

    again = await client.post(SUBMIT, json=job("o-2"))  # still unknown: Kafka still away
    assert (again.status_code, again.headers[OUTCOME_HEADER]) == (503, "unknown")

    api.publisher.unknown = False
    accepted = await client.post(SUBMIT, json=job("o-2"))
    assert accepted.status_code == 202
    assert accepted.json()["message"] == "Job submitted successfully"
    known = await client.post(SUBMIT, json=job("o-2"))  # confirmed: nothing is sent again
    assert known.status_code == 202
    assert [e.request_id for e, _ in api.publisher.published] == ["o-2"]
    ttl = await api.redis.ttl("stt:job:o-2")
    assert ttl > api.wiring.settings.api.submit_ttl_before_publish  # confirmed: full TTL
