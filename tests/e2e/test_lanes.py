"""Priority lanes through the real stack (issue 16 item 4): the API, projector and one
transcriber as processes, real Kafka and Redis, the real model on real speech. With a backlog of
batch jobs waiting, an interactive job submitted later runs next (after the job running when it
came), long before the backlog drains; `stt replay` puts jobs into the batch lane. The lane
policy's own rules over a fake consumer: tests/common/test_lanes.py. Its wait times and the batch
lane's throughput are measured by `make bench` (scenario `lanes`)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stt_common import bus
from stt_common.messages import Lane, Source, SubmitEvent
from stt_common.settings import KafkaSettings
from stt_testing import kafka_tools, processes
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
BACKLOG = 16
TRIALS = 3
HEADERS = {"X-API-Key": processes.API_KEY}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=60, headers=HEADERS) as client:
        yield client


def new_id(kind: str) -> str:
    return f"lane-{kind}-{uuid.uuid4().hex[:10]}"


async def submit(http: httpx.AsyncClient, stack: Stack, rid: str, **extra: Any) -> None:
    body = {"request_id": rid, "media_url": f"{stack.media.url}/english.wav", "language": "en"}
    resp = await http.post("/api/v1/transcribe", json=body | extra)
    assert resp.status_code == 202, resp.text


async def finished(http: httpx.AsyncClient, rid: str, timeout: float = 300) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            body: dict[str, Any] = (
                await http.get(f"/api/v1/transcribe/{rid}", params={"wait": "20"})
            ).json()
            if body["status"] != "PROCESSING":
                return body


async def completed(http: httpx.AsyncClient, rids: list[str]) -> int:
    bodies = await asyncio.gather(*(http.get(f"/api/v1/transcribe/{rid}") for rid in rids))
    return sum(b.json()["status"] == "COMPLETED" for b in bodies)


async def test_an_interactive_job_runs_before_a_batch_backlog_drains(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    backlog = [new_id("batch") for _ in range(BACKLOG)]
    for rid in backlog:
        await submit(http, stack, rid, priority="batch")
    polled = (await http.get(f"/api/v1/transcribe/{backlog[0]}")).json()
    assert polled["priority"] == "batch"
    async with asyncio.timeout(120):  # the transcriber is on the backlog
        while await completed(http, backlog[:4]) == 0:
            await asyncio.sleep(0.2)
    passed_by: list[int] = []
    for _ in range(TRIALS):
        before = await completed(http, backlog)
        rid = new_id("interactive")
        await submit(http, stack, rid)  # no priority: the default tenant's lane, interactive
        body = await finished(http, rid)
        assert body["status"] == "COMPLETED", body
        assert "priority" not in body  # an interactive job answers as before lanes
        passed_by.append(await completed(http, backlog) - before)
    # Each waited for the batch job running when it came (and, if that one ended just as it was
    # submitted, the next): never behind the backlog.
    assert all(n <= 2 for n in passed_by), passed_by
    assert await completed(http, backlog) < BACKLOG, "the backlog drained first"
    for rid in backlog:
        assert (await finished(http, rid))["status"] == "COMPLETED"


async def test_replay_goes_to_the_batch_lane_unless_asked_otherwise(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    rid = new_id("replayed")
    await submit(http, stack, rid)
    assert (await finished(http, rid))["status"] == "COMPLETED"
    kafka = KafkaSettings(topic_submit=stack.env["KAFKA_TOPIC_SUBMIT"])
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]

    def replay(*args: str) -> None:
        done = subprocess.run(
            [*processes.STT, "replay", "submit", "--request-id", rid, *args],
            env=stack.env, cwd=stack.workdir, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]

    await asyncio.to_thread(replay)
    (record,) = await kafka_tools.keyed_records(
        bootstrap, kafka.lane_topic(Lane.BATCH), {rid}, wait=10, until=1
    )
    event = bus.decode(SubmitEvent, record.value)
    assert (event.priority, event.source, event.generation) == (Lane.BATCH, Source.REPLAY, 2)
    async with asyncio.timeout(300):
        while (body := await finished(http, rid)).get("generation") != 2:
            await asyncio.sleep(0.5)
    assert body["status"] == "COMPLETED" and body["priority"] == "batch", body

    await asyncio.to_thread(replay, "--priority", "interactive")
    on_interactive = await kafka_tools.keyed_records(
        bootstrap, kafka.lane_topic(Lane.INTERACTIVE), {rid}, wait=10, until=2
    )
    assert [bus.decode(SubmitEvent, r.value).generation for r in on_interactive] == [1, 3]
