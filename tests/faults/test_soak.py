"""Issue 13's soak: steady load through the API on the real model while a fault strikes every
STT_SOAK_FAULT_EVERY seconds, rotating through kill -9 (and a restart) of the API, each
transcriber, the projector and webhooks, and kill -9 of Kafka and of Redis (its append-only file
kept). Then every job answered 202 must be answered COMPLETED by the API with one transcription
per generation, its webhook delivered, and no client must have been told anything the contract
does not allow (tests/faults/soak_client.py says what is judged).

Length: STT_SOAK_SECONDS (default 210: each of the 7 faults once, STT_SOAK_FAULT_EVERY = 30 s
apart; a new job every STT_SOAK_SUBMIT_EVERY = 6 s), then up to DRAIN_SECONDS for the backlog;
about 8 minutes on 2 busy cores. Select it alone with `pytest -m soak`; longer runs:
`STT_SOAK_SECONDS=1800`. Prints a summary (answers by code, faults and how long each took to
recover, duplicates) with `-s`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stt_common.messages import JobStatus, ResultEvent
from stt_testing import kafka_tools, processes, speech
from stt_testing.media_server import MediaServer
from stt_testing.sounds import ALSA_DIR, ALSA_WORDS
from tests.faults.soak_client import Ledger, SoakClient
from tests.faults.test_truth import kill_kafka, kill_redis, start_again
from tests.webhooks.conftest import Receiver

SOAK_SECONDS = float(os.environ.get("STT_SOAK_SECONDS", "210"))
FAULT_EVERY = float(os.environ.get("STT_SOAK_FAULT_EVERY", "30"))
SUBMIT_EVERY = float(os.environ.get("STT_SOAK_SUBMIT_EVERY", "6"))  # 2 workers keep up here
DRAIN_SECONDS = 300.0  # after the load: time for the backlog to finish
WEBHOOK_SECRET = "soak-" + uuid.uuid4().hex

pytestmark = [
    pytest.mark.infra,
    pytest.mark.faults,
    pytest.mark.e2e,
    pytest.mark.soak,
    pytest.mark.timeout(int(SOAK_SECONDS + DRAIN_SECONDS + 400)),
]


@dataclass
class SoakStack:
    env: dict[str, str]
    workdir: Path
    media: MediaServer
    receiver: Receiver
    api: processes.Api
    workers: dict[str, tuple[processes.Service, str]] = field(default_factory=dict)

    def logs(self) -> str:
        services = [self.api, *(s for s, _ in self.workers.values())]
        return "\n".join(f"--- {s.name}\n{s.tail(20)}" for s in services)


@pytest.fixture
def soak_stack(
    infra: Any, whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SoakStack]:
    """API, projector, webhooks and two real-model transcribers on their own topics; the
    media server serves the alsa-utils recordings (one spoken channel name each)."""
    infra.require_stack()
    workdir = tmp_path_factory.mktemp("soak")
    media_dir = tmp_path_factory.mktemp("soak-media")
    for name in ALSA_WORDS:
        shutil.copy(ALSA_DIR / f"{name}.wav", media_dir / f"{name}.wav")
    prefix = "soak" + uuid.uuid4().hex[:6]
    env = processes.service_env(
        infra.env(),
        prefix=prefix,
        STT_MODEL=str(whisper_model_dir),
        STT_CPU_THREADS="1",
        KAFKA_SESSION_TIMEOUT_MS="6000",
        KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        KAFKA_PUBLISH_TIMEOUT="3",
        KAFKA_WEBHOOKS_GROUP=f"{prefix}-webhooks",
        STT_WORKER_CLAIM_LEASE="10",
        STT_WORKER_SHUTDOWN_GRACE="10",
        STT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STT_WEBHOOK_ALLOW_HOSTS="127.0.0.1",
        STT_WEBHOOK_BACKOFF="0.5",
        STT_WEBHOOK_BACKOFF_MAX="5",
    )
    receiver = Receiver()
    with MediaServer(media_dir) as media:
        stack = SoakStack(env, workdir, media, receiver, processes.api(env, workdir).start())
        try:
            for name, kind, ready in (
                ("projector", "projector", "projector ready"),
                ("webhooks", "webhooks", "webhooks ready"),
                ("transcriber-1", "transcriber", "ready"),
                ("transcriber-2", "transcriber", "ready"),
            ):
                service = processes.worker(kind, env, workdir, name=name).start()
                stack.workers[name] = (service, ready)
            stack.api.wait_ready()
            for service, ready in stack.workers.values():
                service.wait_for_log(ready, timeout=180)
            yield stack
        finally:
            for service, _ in stack.workers.values():
                service.stop()
            stack.api.stop()
            receiver.close()


def kill_and_restart(service: processes.Service, ready: Callable[[int], None]) -> None:
    """kill -9, start again at once, wait until the new process is ready."""
    offset = len(service.log_text())
    service.signal(signal.SIGKILL)
    assert service.proc is not None
    service.proc.wait(10)
    service.start()
    ready(offset)


def faults(stack: SoakStack, infra: Any) -> list[tuple[str, Callable[[], None]]]:
    """The rotation, in order: each entry strikes and returns once the system is whole again."""

    def worker(name: str) -> Callable[[], None]:
        service, needle = stack.workers[name]

        def ready(offset: int) -> None:
            service.wait_for_log(needle, timeout=180, after=offset)

        return lambda: kill_and_restart(service, ready)

    def api_ready(offset: int) -> None:
        stack.api.wait_ready(60)

    def api() -> None:
        kill_and_restart(stack.api, api_ready)

    def kafka() -> None:
        kill_kafka(infra)
        start_again(infra, "kafka", timeout=60)

    return [
        ("kill -9 api", api),
        ("kill -9 transcriber-1", worker("transcriber-1")),
        ("kill -9 projector", worker("projector")),
        ("kill -9 kafka", kafka),
        ("kill -9 webhooks", worker("webhooks")),
        ("kill -9 transcriber-2", worker("transcriber-2")),
        ("kill -9 redis (AOF kept)", lambda: kill_redis(infra, wipe=False)),
    ]


def run_faults(
    stack: SoakStack, infra: Any, stop: threading.Event, log: list[tuple[str, float, float]]
) -> None:
    """One fault every FAULT_EVERY s (the first after half of it) until `stop` or the soak's
    end; `log` gets (fault, seconds into the soak, seconds until whole again)."""
    rotation = faults(stack, infra)
    started = time.monotonic()
    at = FAULT_EVERY / 2
    for k in range(10_000):
        if at > SOAK_SECONDS or stop.wait(max(0.0, started + at - time.monotonic())):
            return
        name, strike = rotation[k % len(rotation)]
        begun = time.monotonic()
        strike()
        log.append((name, round(begun - started, 1), round(time.monotonic() - begun, 1)))
        at += FAULT_EVERY


async def completed_events(env: dict[str, str], rids: set[str]) -> dict[str, list[ResultEvent]]:
    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_RESULTS"], rids, wait=5
    )
    found: dict[str, list[ResultEvent]] = defaultdict(list)
    for record in records:
        event = ResultEvent.model_validate_json(record.value or b"{}")
        if event.status is JobStatus.COMPLETED:
            found[event.request_id].append(event)
    return found


async def test_soak_every_202_completes_once_and_every_answer_is_documented(
    soak_stack: SoakStack, infra: Any
) -> None:
    stack = soak_stack
    ledger = Ledger()
    client = SoakClient(stack.api.url, processes.API_KEY, ledger)
    names = list(ALSA_WORDS)
    tag = uuid.uuid4().hex[:6]
    jobs = []
    for i in range(int(SOAK_SECONDS / SUBMIT_EVERY) + 1):
        rid, name = f"soak-{tag}-{i}", names[i % len(names)]
        body = {
            "request_id": rid,
            "media_url": f"{stack.media.url}/{name}.wav",
            "language": "en",
            "callback_url": f"{stack.receiver.url}/ok/{rid}",
        }
        jobs.append((rid, body))
    expected = {rid: ALSA_WORDS[names[i % len(names)]] for i, (rid, _) in enumerate(jobs)}

    fault_log: list[tuple[str, float, float]] = []
    stop_faults = threading.Event()
    poller = threading.Thread(target=client.run_poller, daemon=True)
    poller.start()
    until = time.monotonic() + SOAK_SECONDS
    submitter = threading.Thread(target=client.run_submitter, args=(jobs, SUBMIT_EVERY, until))
    submitter.start()
    try:
        await asyncio.to_thread(run_faults, stack, infra, stop_faults, fault_log)
        await asyncio.to_thread(submitter.join, SOAK_SECONDS + 200)
        await asyncio.to_thread(client.wait_all_completed, DRAIN_SECONDS, stack.logs)
        await asyncio.sleep(8)  # room for a late second transcription or webhook to show
        await asyncio.to_thread(client.poll_all_once)  # a last look: every job still COMPLETED
    finally:
        stop_faults.set()
        client.stop.set()
        await asyncio.to_thread(poller.join, 30)

    accepted = set(ledger.accepted)
    events = await completed_events(stack.env, accepted)
    # One transcription publishes one COMPLETED event; the same event sent twice (a producer
    # retry) has the same worker and emitted_at, so copies are told apart from second runs.
    runs: dict[tuple[str, int], set[tuple[str | None, Any]]] = defaultdict(set)
    copies = 0
    for rid, found in events.items():
        copies += len(found) - len({(e.generation, e.worker, e.emitted_at) for e in found})
        for e in found:
            runs[(rid, e.generation)].add((e.worker, e.emitted_at))
    twice = {key: sorted(map(str, v)) for key, v in runs.items() if len(v) > 1}
    hooks = {rid: stack.receiver.to(f"/ok/{rid}") for rid in accepted}
    delivered = {rid for rid, hits in hooks.items() if any(b'"COMPLETED"' in h.body for h in hits)}
    wrong = {
        rid: (body.get("transcription"), expected[rid])
        for rid, body in ledger.completed.items()
        if speech.wer(expected[rid], body.get("transcription") or "") > 0.5
    }
    summary = {
        "jobs accepted": len(accepted),
        "faults": fault_log,
        "answers": dict(sorted(ledger.answers.items())),
        "no answer (process killed)": dict(ledger.no_answer),
        "identical copies of a COMPLETED event": copies,
        "webhook POSTs": sum(len(h) for h in hooks.values()),
    }
    print(f"\nsoak summary: {summary}")

    assert not ledger.never_accepted, f"never accepted: {ledger.never_accepted}"
    assert not ledger.broken, "\n".join(ledger.broken[:40])
    assert len(fault_log) >= min(7, int(SOAK_SECONDS / FAULT_EVERY)), fault_log
    assert accepted and set(ledger.completed) == accepted
    assert not (missing := accepted - set(events)), f"no COMPLETED event: {sorted(missing)}"
    assert not twice, f"transcribed more than once per generation: {twice}"
    assert not wrong, f"transcripts far from the recording: {wrong}"
    assert not (silent := sorted(accepted - delivered)), f"no COMPLETED webhook: {silent}"
    for name, (service, _) in stack.workers.items():
        assert service.proc is not None and service.proc.poll() is None, f"{name} exited"
