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
