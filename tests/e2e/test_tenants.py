"""Tenants, job lists and metadata through the real stack: the API, projector and transcriber as
processes, real Kafka and Redis, the real model on real speech (issue 16 items 1-3)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stt_common.messages import JobStatus, ResultEvent, SubmitEvent
from stt_testing import kafka_tools, processes, speech
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
ALPHA = "alpha-" + uuid.uuid4().hex[:8]
BETA = "beta-" + uuid.uuid4().hex[:8]
KAFKA_TENANT = "kt-" + uuid.uuid4().hex[:8]
ROOT = "root-" + uuid.uuid4().hex[:8]
MAX_WER_EN = 0.35
LISTED = 250


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    keys = [processes.API_KEY, f"alpha:{ALPHA}", f"beta:{BETA}", f"kt:{KAFKA_TENANT}"]
    return {"STT_API_KEYS": ",".join([*keys, f"ops:{ROOT}:admin"])}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=60) as client:
        yield client


@pytest.fixture
async def producer(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await kafka.start()
    yield kafka
    await kafka.stop()


def as_(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def new_id() -> str:
    return "ten-" + uuid.uuid4().hex[:12]


async def finished(
    http: httpx.AsyncClient, request_id: str, key: str, timeout: float = 300
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        resp = await http.get(
            f"/api/v1/transcribe/{request_id}", params={"wait": "20"}, headers=as_(key)
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] != "PROCESSING":
            return body
    raise TimeoutError(f"{request_id} still PROCESSING")


async def projected(http: httpx.AsyncClient, request_id: str, key: str) -> None:
    """Wait until the projector has the job of an event published straight to Kafka."""
    async with asyncio.timeout(60):
        while (await http.get(f"/api/v1/transcribe/{request_id}", headers=as_(key))).is_error:
            await asyncio.sleep(0.2)


async def assert_not_found_for(http: httpx.AsyncClient, request_id: str, key: str) -> None:
    """Every route of a job answers as for an unknown one: the seed's exact 404 body."""
    for method, params in (
        ("GET", {}),
        ("GET", {"format": "srt"}),
        ("GET", {"format": "txt"}),
        ("GET", {"wait": "1"}),
        ("DELETE", {}),
    ):
        resp = await http.request(
            method, f"/api/v1/transcribe/{request_id}", params=params, headers=as_(key)
        )
        assert resp.status_code == 404, (method, params, resp.text)
        assert resp.json() == {"detail": f"Job not found: {request_id}"}


async def test_same_request_id_from_two_tenants_is_two_jobs_each_private(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    rid = new_id()
    english = {"request_id": rid, "media_url": f"{stack.media.url}/english.mp3", "language": "en"}
    vietnamese = {"request_id": rid, "media_url": f"{stack.media.url}/vietnamese.wav"}
    a = await http.post(
        "/api/v1/transcribe", json=english | {"metadata": {"post": "a1"}}, headers=as_(ALPHA)
    )
    b = await http.post("/api/v1/transcribe", json=vietnamese, headers=as_(BETA))
    assert (a.status_code, b.status_code) == (202, 202)
    assert b.json()["message"] == "Job submitted successfully"  # not alpha's job
    again = await http.post("/api/v1/transcribe", json=english, headers=as_(ALPHA))
    assert again.json()["message"] != "Job submitted successfully"  # idempotent within alpha

    alpha_job, beta_job = await asyncio.gather(
        finished(http, rid, ALPHA), finished(http, rid, BETA)
    )
    assert alpha_job["status"] == beta_job["status"] == "COMPLETED", (alpha_job, beta_job)
    assert speech.wer(speech.ENGLISH, alpha_job["transcription"]) <= MAX_WER_EN
    assert alpha_job["metadata"] == {"post": "a1"} and alpha_job["tenant"] == "alpha"
    assert beta_job["language"] == "vi" and beta_job["tenant"] == "beta"
    assert beta_job["transcription"] != alpha_job["transcription"]
    assert "metadata" not in beta_job
    # Neither is the default tenant's: a bare key knows no such job.
    await assert_not_found_for(http, rid, processes.API_KEY)
    # An admin key reads any tenant's.
    admin = await http.get(
        f"/api/v1/transcribe/{rid}", params={"tenant": "beta"}, headers=as_(ROOT)
    )
    assert admin.json()["transcription"] == beta_job["transcription"]
    # beta deleting its job leaves alpha's.
    assert (await http.delete(f"/api/v1/transcribe/{rid}", headers=as_(BETA))).status_code == 204
    assert (await http.get(f"/api/v1/transcribe/{rid}", headers=as_(BETA))).status_code == 404
    kept = await http.get(f"/api/v1/transcribe/{rid}", headers=as_(ALPHA))
    assert kept.json()["transcription"] == alpha_job["transcription"]


async def test_an_openai_route_job_belongs_to_the_callers_tenant(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    resp = await http.post(
        "/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {ALPHA}"},
        data={"model": "whisper-1", "language": "en"},
        files={"file": ("english.wav", stack.clips["english"].read_bytes(), "audio/wav")},
        timeout=300,
    )
    assert resp.status_code == 200, resp.text
    assert speech.wer(speech.ENGLISH, resp.json()["text"]) <= MAX_WER_EN
    rid = resp.headers["x-request-id"]
    own = await http.get(f"/api/v1/transcribe/{rid}", headers=as_(ALPHA))
    assert own.status_code == 200 and own.json()["tenant"] == "alpha"
    for key in (BETA, processes.API_KEY):
        await assert_not_found_for(http, rid, key)


async def test_a_tenant_named_in_a_kafka_event_is_honoured_and_a_malformed_one_dead_lettered(
    stack: Stack, http: httpx.AsyncClient, producer: AIOKafkaProducer
) -> None:
    good = SubmitEvent(
        request_id=new_id(),
        media_url=f"{stack.media.url}/english.mp3",
        language="en",
        tenant="kt",
        metadata={"channel": "crawler"},
    )
    await producer.send_and_wait(
        stack.env["KAFKA_TOPIC_SUBMIT"],
        good.model_dump_json(exclude_none=True).encode(),
        key=good.job_id.encode(),
    )
    bad_id = new_id()
    bad = json.loads(good.model_copy(update={"request_id": bad_id}).model_dump_json())
    bad["tenant"] = "Not A Tenant!"
    await producer.send_and_wait(
        stack.env["KAFKA_TOPIC_SUBMIT"], json.dumps(bad).encode(), key=bad_id.encode()
    )

    await projected(http, good.request_id, KAFKA_TENANT)
    body = await finished(http, good.request_id, KAFKA_TENANT)
    assert body["status"] == "COMPLETED", body
    assert body["metadata"] == {"channel": "crawler"}
    assert speech.wer(speech.ENGLISH, body["transcription"]) <= MAX_WER_EN
    await assert_not_found_for(http, good.request_id, processes.API_KEY)
    listed = await http.get("/api/v1/transcribe", headers=as_(KAFKA_TENANT))
    assert good.request_id in [j["request_id"] for j in listed.json()["jobs"]]

    dead = await kafka_tools.keyed_records(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_TOPIC_DLQ"], {bad_id}, 30, until=1
    )
    assert dead, "the event with a malformed tenant was not dead-lettered"
    headers = dict(dead[0].headers)
    assert headers["stt-error-type"] == b"poison_event"
    for key in (processes.API_KEY, KAFKA_TENANT):
        resp = await http.get(f"/api/v1/transcribe/{bad_id}", headers=as_(key))
        assert resp.status_code == 404


def result(rid: str, status: JobStatus, submitted: datetime, tag: str) -> ResultEvent:
    return ResultEvent(
        request_id=rid,
        tenant="alpha",
        status=status,
        stage="done" if status is not JobStatus.PROCESSING else "queued",
        transcription=f"text of {rid}" if status is JobStatus.COMPLETED else None,
        submitted_at=submitted,
        emitted_at=submitted + timedelta(seconds=1 if status is JobStatus.PROCESSING else 30),
        metadata={"batch": tag},
    )


async def publish(producer: AIOKafkaProducer, topic: str, events: list[ResultEvent]) -> None:
    sent = [
        await producer.send(
            topic, e.model_dump_json(exclude_none=True).encode(), key=e.job_id.encode()
        )
        for e in events
    ]
    await asyncio.gather(*sent)


async def test_lists_paginate_without_gaps_or_repeats_while_jobs_complete(
    stack: Stack, http: httpx.AsyncClient, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    start = datetime.now(UTC) - timedelta(minutes=30)
    # Two jobs per millisecond: equal scores in the index, which the cursor must order.
    rids = [f"list-{tag}-{i:03d}" for i in range(LISTED)]
    submitted = {rid: start + timedelta(milliseconds=i // 2) for i, rid in enumerate(rids)}
    topic = stack.env["KAFKA_TOPIC_RESULTS"]
    await publish(
        producer, topic, [result(r, JobStatus.PROCESSING, submitted[r], tag) for r in rids]
    )
    async with asyncio.timeout(60):
        while True:
            resp = await http.get(
                "/api/v1/transcribe",
                params={"metadata.batch": tag, "limit": "1000"},
                headers=as_(ALPHA),
            )
            if len(resp.json()["jobs"]) == LISTED:
                break
            await asyncio.sleep(0.5)
    # Real jobs too, running while the pages are read.
    real = [new_id() for _ in range(2)]
    for rid in real:
        body = {"request_id": rid, "media_url": f"{stack.media.url}/english.mp3", "language": "en"}
        assert (
            await http.post("/api/v1/transcribe", json=body, headers=as_(ALPHA))
        ).status_code == 202

    async def complete() -> None:
        for rid in random.Random(7).sample(rids, len(rids)):
            await publish(producer, topic, [result(rid, JobStatus.COMPLETED, submitted[rid], tag)])
            await asyncio.sleep(0.01)

    completing = asyncio.create_task(complete())
    seen: list[str] = []
    statuses: set[str] = set()
    cursor = None
    while True:
        params = {"limit": "17"} | ({"cursor": cursor} if cursor else {})
        resp = await http.get("/api/v1/transcribe", params=params, headers=as_(ALPHA))
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen += [j["request_id"] for j in page["jobs"]]
        statuses |= {j["status"] for j in page["jobs"] if j["request_id"] in submitted}
        cursor = page.get("next_cursor")
        if cursor is None:
            break
        await asyncio.sleep(0.2)
    await completing
    assert len(seen) == len(set(seen)), "a job was listed twice"
    ours = [r for r in seen if r in submitted]
    assert ours == sorted(rids, key=lambda r: (submitted[r], r), reverse=True)
    assert statuses == {"PROCESSING", "COMPLETED"}  # the pages were read while jobs completed
    assert set(real) <= set(seen)
    for rid in real:
        assert (await finished(http, rid, ALPHA))["status"] == "COMPLETED"

    failed = await http.get(
        "/api/v1/transcribe", params={"status": "FAILED", "metadata.batch": tag}, headers=as_(ALPHA)
    )
    assert failed.json() == {"jobs": []}
    with_text = await http.get(
        "/api/v1/transcribe",
        params={"metadata.batch": tag, "include": "transcript", "limit": "1"},
        headers=as_(ALPHA),
    )
    [newest] = with_text.json()["jobs"]
    assert newest["transcription"] == f"text of {newest['request_id']}"
    beta = await http.get("/api/v1/transcribe", params={"metadata.batch": tag}, headers=as_(BETA))
    assert beta.json() == {"jobs": []}

    # A job of one tenant deleted under a request_id another tenant also uses: the rebuild must
    # forget the first (its tombstone is keyed by its job id) and keep the second.
    shared = new_id()
    body = {"request_id": shared, "media_url": f"{stack.media.url}/english.mp3", "language": "en"}
    for key in (ALPHA, BETA):
        assert (await http.post("/api/v1/transcribe", json=body, headers=as_(key))).is_success
    await asyncio.sleep(1)  # the projector logs both states to the status topic
    assert (await http.delete(f"/api/v1/transcribe/{shared}", headers=as_(BETA))).status_code == 204

    # Redis loses the jobs and the index: `stt projector --rebuild` restores both.
    redis = Redis(
        host=stack.env["REDIS_HOST"],
        port=int(stack.env["REDIS_PORT"]),
        password=stack.env["REDIS_PASSWORD"] or None,
    )
    try:
        await redis.delete("stt:jobs:alpha", *(f"stt:job:alpha/{r}" for r in rids[:50]))
    finally:
        await redis.aclose()
    done = subprocess.run(
        [*processes.STT, "projector", "--rebuild"],
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    again = await http.get(
        "/api/v1/transcribe", params={"metadata.batch": tag, "limit": "1000"}, headers=as_(ALPHA)
    )
    restored = [j["request_id"] for j in again.json()["jobs"]]
    assert restored == ours
    assert (await http.get(f"/api/v1/transcribe/{shared}", headers=as_(BETA))).status_code == 404
    assert (await http.get(f"/api/v1/transcribe/{shared}", headers=as_(ALPHA))).status_code == 200
    assert {j["status"] for j in again.json()["jobs"]} == {"COMPLETED"}


def stt_jobs(stack: Stack, *args: str, key: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STT_")}
    return subprocess.run(
        [*processes.STT, "jobs", *args],
        env=clean | {"STT_API_URL": stack.api.url, "STT_API_KEYS": key},
        cwd=stack.workdir,  # not the repo: a developer's .env must not be read
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_stt_jobs_lists_and_shows_the_callers_jobs(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    rid = new_id()
    body = {
        "request_id": rid,
        "media_url": f"{stack.media.url}/english.mp3",
        "language": "en",
        "metadata": {"cli": rid},
    }
    assert (await http.post("/api/v1/transcribe", json=body, headers=as_(BETA))).status_code == 202
    await finished(http, rid, BETA)
    # The first STT_API_KEYS entry is a tenant:key one: the CLI sends its key part.
    listed = stt_jobs(
        stack, "list", "--since", "1h", "--metadata", f"cli={rid}", "--json", key=f"beta:{BETA}"
    )
    assert listed.returncode == 0, listed.stderr
    [job] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (job["request_id"], job["status"], job["tenant"]) == (rid, "COMPLETED", "beta")
    table = stt_jobs(stack, "list", "--status", "COMPLETED", "--limit", "3", key=BETA)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert 1 <= len(lines) <= 3 and all("\tCOMPLETED\t" in line for line in lines)
    assert lines[0].split("\t")[2] == rid  # newest first
    shown = stt_jobs(stack, "show", rid, key=BETA)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metadata"] == {"cli": rid}
    other = stt_jobs(stack, "show", rid, key=ALPHA)
    assert other.returncode == 1 and rid in other.stderr
