"""Issue 13: what a client is told stays true through Redis losing its data, Kafka going away
under a burst of submits, and duplicates of a job sent straight to Kafka (real processes, real
Kafka and Redis, fake engine)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from stt_common.messages import JobStatus, ResultEvent
from stt_local.errors import LocalStackError
from stt_testing import kafka_tools
from tests.faults.conftest import FaultStack, new_ids

pytestmark = [pytest.mark.infra, pytest.mark.faults]


async def completed_results(env: dict[str, str], rids: list[str]) -> Counter[str]:
    """How many COMPLETED result events each job has: one per transcription."""
    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_RESULTS"], set(rids)
    )
    done: Counter[str] = Counter()
    for record in records:
        event = ResultEvent.model_validate_json(record.value or b"{}")
        if event.status is JobStatus.COMPLETED:
            done[event.request_id] += 1
    return done


def kill_redis(infra: Any, wipe: bool) -> None:
    """kill -9 the test session's Redis (and delete its data files), then start it again."""
    server = infra.require_stack().redis
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if wipe:
        for path in server.data_paths():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    start_again(infra, "redis")


def start_again(infra: Any, server: str, timeout: float = 30) -> None:
    """Start a killed server again; its port can look busy for a moment after kill -9."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            infra.start(server)
            return
        except LocalStackError as exc:
            if "already in use" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def poll_until_restored(
    stack: FaultStack, expected: dict[str, dict[str, Any]], timeout: float = 90
) -> Counter[int]:
    """Poll every job until each answers its old COMPLETED body; never a 404. The answers seen."""
    seen: Counter[int] = Counter()
    pending = set(expected)
    deadline = time.monotonic() + timeout
    with stack.http() as http:
        while pending and time.monotonic() < deadline:
            for rid in sorted(pending):
                resp = http.get(f"/api/v1/transcribe/{rid}")
                seen[resp.status_code] += 1
                assert resp.status_code in (200, 503), (rid, resp.status_code, resp.text)
                if resp.status_code == 503:
                    assert resp.headers["Retry-After"].isdigit(), resp.headers
                    assert "detail" in resp.json()
                    continue
                body = resp.json()
                if body["status"] == "COMPLETED":
                    assert body["transcription"] == expected[rid]["transcription"]
                    pending.discard(rid)
            time.sleep(0.2)
    assert not pending, f"never restored: {sorted(pending)}\n{stack.logs()}"
    return seen


async def test_redis_losing_its_data_never_answers_404_and_nothing_runs_twice(
    fault_stack: FaultStack, infra: Any
) -> None:
    infra.require_stack()
    rids = new_ids("wiped", 8)
    for rid in rids:
        assert fault_stack.submit(rid).status_code == 202
    finished = await asyncio.to_thread(fault_stack.wait_terminal, rids, 120)
    assert {b["status"] for b in finished.values()} == {"COMPLETED"}
    await asyncio.sleep(1.5)  # appendfsync everysec

    # kill -9 with its append-only file: everything is still there, nothing is rebuilt (a 503
    # may come from a pooled connection to the dead server, never a 404).
    await asyncio.to_thread(kill_redis, infra, False)
    await asyncio.to_thread(poll_until_restored, fault_stack, finished, 30)
    assert "Redis lost its data" not in fault_stack.projector.log_text()

    # kill -9 and wipe: polls answer 503 + Retry-After until the projector has rebuilt Redis
    # from the status topic by itself, then every job is back with its transcript.
    await asyncio.to_thread(kill_redis, infra, True)
    seen = await asyncio.to_thread(poll_until_restored, fault_stack, finished)
    assert seen[503] > 0, seen  # the wipe was noticed: answers waited for the restore
    assert "store restored from" in fault_stack.projector.log_text()

    # A resubmit of such a job answers the finished job and transcribes nothing again.
    for rid in rids:
        resp = fault_stack.submit(rid)
        assert resp.status_code == 202 and resp.json()["status"] == "COMPLETED", resp.text
    await asyncio.sleep(3 * 2)  # a second transcription would take JOB_SECONDS
    assert await completed_results(fault_stack.env, rids) == Counter({rid: 1 for rid in rids})


async def committed_to_end(env: dict[str, str], group: str, topic: str) -> bool:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = range(int(env["KAFKA_TOPIC_PARTITIONS"]))
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()
    assert any(end > 0 for end in ends.values())
    return all(committed.get(tp) is not None and committed[tp].offset >= end
               for tp, end in ends.items() if end > 0)  # fmt: skip


async def test_copies_sent_straight_to_kafka_while_the_projector_is_stopped_run_once(
    fault_stack: FaultStack,
) -> None:
    fault_stack.projector.stop()
    env = fault_stack.env
    [rid] = new_ids("copies", 1)
    assert fault_stack.submit(rid).status_code == 202
    [original] = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_SUBMIT"], {rid}, until=1, wait=10
    )
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await producer.start()
    try:
        for _ in range(20):
            await producer.send_and_wait(
                env["KAFKA_TOPIC_SUBMIT"], original.value, key=original.key
            )
    finally:
        await producer.stop()

    deadline = time.monotonic() + 120
    group, topic = env["KAFKA_TRANSCRIBER_GROUP"], env["KAFKA_TOPIC_SUBMIT"]
    while not await committed_to_end(env, group, topic):
        assert time.monotonic() < deadline, f"copies never all consumed\n{fault_stack.logs()}"
        await asyncio.sleep(1)
    assert await completed_results(env, [rid]) == Counter({rid: 1})

    fault_stack.projector.start()
    final = await asyncio.to_thread(fault_stack.wait_terminal, [rid], 60)
    assert final[rid]["status"] == "COMPLETED"


def kill_kafka(infra: Any) -> None:
    server = infra.require_stack().kafka
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while server.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)


async def test_kafka_killed_during_a_burst_every_503_is_refused_or_unknown_and_true(
    fault_stack: FaultStack, infra: Any
) -> None:
    infra.require_stack()
    # One job first, as a running API has had: the producer then knows the topic. Without it,
    # on a busy machine Kafka died before the first metadata came and all 24 were `refused`.
    (warm,) = new_ids("warm", 1)
    assert fault_stack.submit(warm).status_code == 202
    rids = new_ids("burst", 24)
    answers: dict[str, Any] = {}

    def burst() -> None:
        with ThreadPoolExecutor(8) as pool:
            for rid, resp in zip(rids, pool.map(fault_stack.submit, rids), strict=True):
                answers[rid] = resp

    submitting = asyncio.create_task(asyncio.to_thread(burst))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(kill_kafka, infra)
    await submitting
    await asyncio.sleep(3)
    await asyncio.to_thread(start_again, infra, "kafka")

    codes = Counter(r.status_code for r in answers.values())
    assert set(codes) <= {202, 503}, {rid: (r.status_code, r.text) for rid, r in answers.items()}
    assert codes[503] > 0, codes  # the outage was hit
    outcomes = {rid: r.headers.get("X-Submit-Outcome") for rid, r in answers.items()}
    failed = [rid for rid, r in answers.items() if r.status_code == 503]
    refused = [rid for rid in failed if outcomes[rid] == "refused"]
    unknown = [rid for rid in failed if outcomes[rid] == "unknown"]
    assert len(refused) + len(unknown) == codes[503], outcomes

    # Every "unknown" is resubmitted with the same request_id until Kafka takes it.
    deadline = time.monotonic() + 90
    for rid in unknown:
        while (resp := fault_stack.submit(rid)).status_code != 202:
            assert resp.status_code == 503, resp.text
            assert time.monotonic() < deadline, f"{rid} never accepted: {resp.text}"
            await asyncio.sleep(1)
    accepted = [rid for rid in rids if rid not in refused]
    final = await asyncio.to_thread(fault_stack.wait_terminal, accepted, 180)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}
    await asyncio.sleep(6)  # room for a second transcription to show
    assert await completed_results(fault_stack.env, accepted) == Counter(
        {rid: 1 for rid in accepted}
    )
    # Every "refused" stays refused: no event on the topic, no job.
    if refused:
        leaked = await kafka_tools.keyed_records(
            fault_stack.env["KAFKA_BOOTSTRAP_SERVERS"],
            fault_stack.env["KAFKA_TOPIC_SUBMIT"],
            set(refused),
        )
        assert leaked == []
        assert {fault_stack.get(rid)["status"] for rid in refused} == {"404"}
    print(f"answers {dict(codes)}; refused {len(refused)}, unknown {len(unknown)}")
