"""kill -9 a transcriber in the middle of a cross-job batch (two batching workers in the group):
the other member runs the unfinished jobs, and every job completes exactly once (one COMPLETED
per job and generation on the results topic, one terminal outcome in the job's history)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from typing import Any

import pytest

from stt_common.messages import JobStatus, ResultEvent
from stt_testing import kafka_tools, processes
from tests.faults.conftest import FaultStack, assert_all_final, assert_one_outcome_each, new_ids
from tests.faults.test_worker_crashes import worker_of

pytestmark = [pytest.mark.infra, pytest.mark.faults]
BATCHING = {
    "STT_CROSS_JOB_BATCH": "4",
    "STT_BATCH_WAIT_MS": "1000",  # jobs submitted together share a batch
    "STT_WORKER_CLAIM_LEASE": "5",  # the victim's claims lapse soon
}


def batch_started(service: processes.Service) -> list[str]:
    """The job ids of the last batch `service` started with two or more jobs, or []."""
    found = re.findall(r"batch of (\d+) jobs started: ([^\n\"]+)", service.log_text())
    multi = [ids.split() for n, ids in found if int(n) >= 2]
    return multi[-1] if multi else []


async def test_kill_9_mid_batch_every_job_completes_once(
    fault_stack: FaultStack, infra: Any
) -> None:
    for service in fault_stack.transcribers:  # only batching workers from here on
        service.stop()
    fault_stack.transcribers.clear()
    workers = [fault_stack.add_transcriber(f"batching-{i}", **BATCHING) for i in (1, 2)]
    for worker in workers:
        await asyncio.to_thread(worker.wait_for_log, "cross-job batches")
    env = fault_stack.env
    await kafka_tools.wait_for_members(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TRANSCRIBER_GROUP"], 2
    )

    rids = new_ids("kill-batch", 10)
    for rid in rids:
        assert fault_stack.submit(rid).status_code == 202
    victim, in_batch = None, []
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for worker in workers:
            in_batch = batch_started(worker)
            if in_batch:
                victim = worker
                break
        await asyncio.sleep(0.1)
    assert victim is not None, f"no batch of two or more jobs was started\n{fault_stack.logs()}"
    victim.signal(signal.SIGKILL)  # the fake engine takes 3 s per batch: this is mid-batch
    survivor = next(w for w in workers if w is not victim)

    final = await asyncio.to_thread(fault_stack.wait_terminal, rids, 120)
    assert_all_final(final)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}, final
    assert victim.proc is not None and survivor.proc is not None
    for rid in in_batch:  # the killed batch's jobs were finished by the other member
        assert (await worker_of(infra, rid) or "").endswith(f"-{survivor.proc.pid}"), rid

    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_RESULTS"], set(rids)
    )
    events = [ResultEvent.model_validate_json(r.value) for r in records if r.value]
    completed = Counter(
        (e.request_id, e.generation) for e in events if e.status is JobStatus.COMPLETED
    )
    assert sorted(completed) == sorted((rid, 1) for rid in rids), completed
    assert set(completed.values()) == {1}, completed  # none ran to the end twice
    await assert_one_outcome_each(env, rids)
