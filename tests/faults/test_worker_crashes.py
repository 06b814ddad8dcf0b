"""kill -9 a transcriber mid-job, and kill -9 the projector while results flow: nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from stt_common.job_store import JobStore
from tests.faults.conftest import FaultStack, assert_all_final, assert_one_outcome_each, new_ids

pytestmark = [pytest.mark.infra, pytest.mark.faults]


async def worker_of(infra: Any, rid: str) -> str | None:
    redis = Redis(host=infra.redis_host, port=infra.redis_port, password=infra.redis_password)
    try:
        record = await JobStore(redis, 3600).get(rid)
        return record.worker if record else None
    finally:
        await redis.aclose()


async def test_kill_9_transcriber_mid_job_another_member_finishes(
    fault_stack: FaultStack, infra: Any
) -> None:
    rids = new_ids("kill-tr", 4)
    for rid in rids:
        assert fault_stack.submit(rid).status_code == 202
    victim_rid, victim = None, None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for rid in rids:
            if fault_stack.get(rid).get("stage") == "transcribing":
                worker = await worker_of(infra, rid)
                pids = {t.proc.pid: t for t in fault_stack.transcribers if t.proc}
                owner = pids.get(int(worker.rsplit("-", 1)[1])) if worker else None
                if owner is not None:
                    victim_rid, victim = rid, owner
                    break
        await asyncio.sleep(0.2)
    assert victim is not None and victim_rid is not None, "no job was seen transcribing"
    victim.signal(signal.SIGKILL)

    final = await asyncio.to_thread(fault_stack.wait_terminal, rids, 120)
    assert_all_final(final)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}, final
    assert await worker_of(infra, victim_rid) != f"{victim.proc.pid}"  # type: ignore[union-attr]
    await assert_one_outcome_each(fault_stack.env, rids)


async def test_kill_9_projector_while_results_flow_statuses_converge(
    fault_stack: FaultStack,
) -> None:
    rids = new_ids("kill-pr", 6)
    for rid in rids:
        assert fault_stack.submit(rid).status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(fault_stack.get(rid)["status"] == "COMPLETED" for rid in rids):
            break
        await asyncio.sleep(0.2)
    fault_stack.projector.signal(signal.SIGKILL)
    await asyncio.sleep(2)
    fault_stack.projector.start()
    final = await asyncio.to_thread(fault_stack.wait_terminal, rids, 120)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}, final
    await assert_one_outcome_each(fault_stack.env, rids)


async def owner_when_transcribing(stack: FaultStack, infra: Any, rid: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if stack.get(rid).get("stage") == "transcribing":
            worker = await worker_of(infra, rid)
            for service in stack.transcribers:
                if service.proc and worker and worker.endswith(f"-{service.proc.pid}"):
                    return service
        await asyncio.sleep(0.1)
    raise AssertionError(f"{rid} was never seen transcribing")


async def test_sigterm_finishes_the_running_job_then_leaves(
    fault_stack: FaultStack, infra: Any
) -> None:
    (rid,) = new_ids("term", 1)
    assert fault_stack.submit(rid).status_code == 202
    owner = await owner_when_transcribing(fault_stack, infra, rid)
    owner.signal(signal.SIGTERM)
    assert owner.proc is not None
    assert await asyncio.to_thread(owner.proc.wait, 30) == 0
    (body,) = (await asyncio.to_thread(fault_stack.wait_terminal, [rid])).values()
    assert body["status"] == "COMPLETED"
    assert (await worker_of(infra, rid) or "").endswith(f"-{owner.proc.pid}")


async def test_sigterm_past_the_grace_hands_the_job_back(
    fault_stack: FaultStack, infra: Any
) -> None:
    for service in fault_stack.transcribers:  # only impatient workers from here on
        service.stop()
    fault_stack.transcribers.clear()
    impatient = fault_stack.add_transcriber("impatient", STT_WORKER_SHUTDOWN_GRACE="0.5")
    impatient.wait_for_log("ready")
    (rid,) = new_ids("handback", 1)
    assert fault_stack.submit(rid).status_code == 202
    owner = await owner_when_transcribing(fault_stack, infra, rid)
    owner.signal(signal.SIGTERM)
    assert owner.proc is not None and await asyncio.to_thread(owner.proc.wait, 30) == 0
    assert fault_stack.get(rid)["status"] == "PROCESSING"  # handed back, not half-finished
    successor = fault_stack.add_transcriber("successor")
    (body,) = (await asyncio.to_thread(fault_stack.wait_terminal, [rid], 60)).values()
    assert body["status"] == "COMPLETED"
    assert (await worker_of(infra, rid) or "").endswith(f"-{successor.proc.pid}")  # type: ignore[union-attr]
