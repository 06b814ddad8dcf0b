"""Two transcriber hosts (network namespaces) against Kafka and Redis on a third; cut a link."""

from __future__ import annotations

import asyncio
import os
import pickle
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, JobStatus, Phase, SubmitEvent
from stt_local import Stack, StackConfig
from stt_testing import processes
from stt_testing.infra import cache_dir
from stt_testing.media_server import MediaServer
from tests.faults import netns
from tests.faults.conftest import status_history

pytestmark = [pytest.mark.infra, pytest.mark.faults]
KAFKA_PORT, REDIS_PORT = 9092, 6379


@dataclass
class Hosts:
    topo: netns.Topology
    env: dict[str, str]
    media: MediaServer
    redis_password: str
    transcribers: dict[int, processes.Service]


def hub_stack(state: Path, password: str) -> StackConfig:
    return StackConfig(
        state_dir=state, cache_dir=cache_dir(), kafka_port=KAFKA_PORT,
        kafka_controller_port=KAFKA_PORT + 1, redis_port=REDIS_PORT,
        redis_password=password, host=netns.HUB_IP,
    )  # fmt: skip


@pytest.fixture
def hosts(tmp_path: Path, hello_dir: Path) -> Iterator[Hosts]:
    if os.geteuid() != 0 or (why := netns.available()):
        pytest.skip(f"network namespaces unavailable: {why or 'not root'}")
    password = secrets.token_hex(8)
    config = hub_stack(tmp_path / "hub", password)
    with netns.Topology() as topo, MediaServer(hello_dir, host=netns.ROOT_IP) as media:
        # The launcher runs inside the hub namespace, so Kafka and Redis bind there.
        code = (
            "import sys, pickle; from stt_local import Stack; "
            "Stack(pickle.loads(bytes.fromhex(sys.argv[1]))).up(['kafka', 'redis'])"
        )
        subprocess.run(
            [*topo.exec_prefix(topo.hub), sys.executable, "-c", code, pickle.dumps(config).hex()],
            check=True, timeout=180, cwd=tmp_path,
        )  # fmt: skip
        env = processes.service_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": f"{netns.HUB_IP}:{KAFKA_PORT}",
                "REDIS_HOST": netns.HUB_IP,
                "REDIS_PORT": str(REDIS_PORT),
                "REDIS_PASSWORD": password,
            },
            prefix="hosts" + uuid.uuid4().hex[:6],
            STT_ENGINE="fake",
            STT_FAKE_DELAY="8",
            STT_FETCH_ALLOW_HOSTS=netns.ROOT_IP,
            KAFKA_SESSION_TIMEOUT_MS="6000",
            KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        )
        projector = processes.worker("projector", env, tmp_path, "projector")
        projector.wrapper = topo.exec_prefix(topo.hub)
        workers: dict[int, processes.Service] = {}
        try:
            projector.start().wait_for_log("projector ready")
            for n in (1, 2):
                workers[n] = processes.worker("transcriber", env, tmp_path, f"host{n}")
                workers[n].env = env | {"STT_WORKER_ID": f"host{n}"}
                workers[n].wrapper = topo.exec_prefix(topo.host(n))
                workers[n].start().wait_for_log("ready")
            yield Hosts(topo, env, media, password, workers)
        finally:
            for service in (*workers.values(), projector):
                service.kill()
            Stack(config).down()


async def current(hosts: Hosts, rid: str) -> JobRecord | None:
    redis = Redis(host=netns.HUB_IP, port=REDIS_PORT, password=hosts.redis_password)
    try:
        return await JobStore(redis, 3600).get(rid)
    finally:
        await redis.aclose()


async def test_cut_link_mid_job_other_host_finishes_and_no_second_result_wins(
    hosts: Hosts,
) -> None:
    rid = "hosts-" + uuid.uuid4().hex[:8]
    event = SubmitEvent(request_id=rid, media_url=f"{hosts.media.url}/hello.wav", language="en")
    producer = AIOKafkaProducer(bootstrap_servers=hosts.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            hosts.env["KAFKA_TOPIC_SUBMIT"], event.model_dump_json().encode(), key=rid.encode()
        )
    finally:
        await producer.stop()

    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        record = await current(hosts, rid)
        if record and record.stage == "transcribing" and record.worker:
            victim = int(record.worker.removeprefix("host"))
        await asyncio.sleep(0.2)
    assert victim is not None, "no host picked the job up"
    survivor = 3 - victim
    hosts.topo.cut(victim)
    try:
        deadline = time.monotonic() + 90
        record = None
        while time.monotonic() < deadline:
            record = await current(hosts, rid)
            if record and record.status is JobStatus.COMPLETED:
                break
            await asyncio.sleep(0.5)
        assert record is not None and record.status is JobStatus.COMPLETED, record
        assert record.worker == f"host{survivor}", record
    finally:
        hosts.topo.restore(victim)
    # The cut host comes back with its own finished job: give it time to try to publish.
    await asyncio.sleep(15)
    final = await current(hosts, rid)
    assert final is not None and final.worker == f"host{survivor}", final
    history = (await status_history(hosts.env, {rid}))[rid]
    terminal_workers = {j.worker for j in history if j.phase is Phase.TERMINAL}
    assert terminal_workers == {f"host{survivor}"}, history
