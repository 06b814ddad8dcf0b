"""A small system of real processes (fake engine) to crash in many ways, plus loss accounting."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stt_common.messages import JobRecord, JobStatus, Phase
from stt_testing import kafka_tools, processes, speech
from stt_testing.media_server import MediaServer

JOB_SECONDS = "3"  # fake engine time per job: long enough to be killed in the middle


@dataclass
class FaultStack:
    env: dict[str, str]
    workdir: Path
    media: MediaServer
    api: processes.Api
    projector: processes.Service
    transcribers: list[processes.Service] = field(default_factory=list)

    @property
    def clip_url(self) -> str:
        return f"{self.media.url}/hello.wav"

    def add_transcriber(self, name: str, **env: str) -> processes.Service:
        service = processes.worker("transcriber", self.env | env, self.workdir, name=name).start()
        self.transcribers.append(service)
        return service

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.url, headers={"X-API-Key": processes.API_KEY}, timeout=30
        )

    def submit(self, rid: str, url: str | None = None) -> httpx.Response:
        with self.http() as http:
            body = {"request_id": rid, "media_url": url or self.clip_url, "language": "en"}
            return http.post("/api/v1/transcribe", json=body)

    def get(self, rid: str) -> dict[str, Any]:
        with self.http() as http:
            resp = http.get(f"/api/v1/transcribe/{rid}")
            return resp.json() if resp.status_code == 200 else {"status": str(resp.status_code)}

    def wait_terminal(self, rids: list[str], timeout: float = 90) -> dict[str, dict[str, Any]]:
        """Poll until every job is COMPLETED or FAILED; fail naming the ones that are not."""
        deadline = time.monotonic() + timeout
        final: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and len(final) < len(rids):
            for rid in rids:
                if rid not in final:
                    body = self.get(rid)
                    if body["status"] in ("COMPLETED", "FAILED"):
                        final[rid] = body
            time.sleep(0.5)
        lost = {rid: self.get(rid).get("status") for rid in rids if rid not in final}
        assert not lost, f"jobs never finished (lost?): {lost}\n{self.logs()}"
        return final

    def logs(self) -> str:
        services = [self.api, self.projector, *self.transcribers]
        return "\n".join(f"--- {s.name}\n{s.tail(15)}" for s in services)


async def status_history(env: dict[str, str], rids: set[str]) -> dict[str, list[JobRecord]]:
    """Every state the projector accepted for `rids`, from the status topic, in order."""
    history: dict[str, list[JobRecord]] = defaultdict(list)
    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_STATUS"], rids
    )
    for record in records:
        if record.value:
            job = JobRecord.model_validate_json(record.value)
            history[job.request_id].append(job)
    return history


async def assert_one_outcome_each(env: dict[str, str], rids: list[str]) -> None:
    """No job shows two different terminal outcomes for one generation (a second result won)."""
    history = await status_history(env, set(rids))
    doubled = {}
    for rid in rids:
        outcomes = {
            (j.generation, j.status, j.transcription, j.error)
            for j in history.get(rid, [])
            if j.phase is Phase.TERMINAL
        }
        per_generation = defaultdict(set)
        for generation, status, text, error in outcomes:
            per_generation[generation].add((status, text, error))
        if any(len(v) > 1 for v in per_generation.values()):
            doubled[rid] = per_generation
    assert not doubled, f"jobs with more than one terminal outcome: {doubled}"


def assert_all_final(final: dict[str, dict[str, Any]]) -> None:
    for rid, body in final.items():
        assert body["status"] in (JobStatus.COMPLETED, JobStatus.FAILED), (rid, body)
        if body["status"] == JobStatus.FAILED:
            assert body.get("error"), f"{rid} FAILED without a reason: {body}"


@pytest.fixture(scope="session")
def hello_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fault-media")
    speech.make_speech("hello there", "en-us", root / "hello.wav")
    return root


@pytest.fixture
def fault_stack(
    infra: Any, hello_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    """API, projector and two fake-engine transcribers on their own topics."""
    workdir = tmp_path_factory.mktemp("faults")
    env = processes.service_env(
        infra.env(),
        prefix="fault" + uuid.uuid4().hex[:6],
        STT_ENGINE="fake",
        STT_FAKE_DELAY=JOB_SECONDS,
        KAFKA_SESSION_TIMEOUT_MS="6000",
        KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        KAFKA_PUBLISH_TIMEOUT="3",
        STT_WORKER_SHUTDOWN_GRACE="10",
    )
    with MediaServer(hello_dir) as media:
        api = processes.api(env, workdir).start()
        projector = processes.worker("projector", env, workdir).start()
        stack = FaultStack(env, workdir, media, api, projector)
        try:
            api.wait_ready()
            projector.wait_for_log("projector ready")
            for i in (1, 2):
                stack.add_transcriber(f"transcriber-{i}").wait_for_log("ready")
            yield stack
        finally:
            for service in (*stack.transcribers, projector, api):
                service.stop()


def new_ids(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i}" for i in range(count)]
