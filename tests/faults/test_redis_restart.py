"""Redis goes away while results flow: the projector waits for it instead of exiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.faults.conftest import FaultStack, assert_all_final, new_ids

pytestmark = [pytest.mark.infra, pytest.mark.faults]


async def test_redis_restart_while_results_flow_projector_keeps_going(
    fault_stack: FaultStack, infra: Any
) -> None:
    infra.require_stack()
    rids = new_ids("redis-down", 6)
    for rid in rids:
        assert fault_stack.submit(rid).status_code == 202
    await asyncio.sleep(1)  # the first jobs are running; their results land during the outage
    await asyncio.to_thread(infra.stop, "redis")
    await asyncio.sleep(6)
    await asyncio.to_thread(infra.start, "redis")  # it comes back empty

    final = await asyncio.to_thread(fault_stack.wait_terminal, rids, 120)
    assert_all_final(final)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}, final
    assert fault_stack.projector.proc is not None
    assert fault_stack.projector.proc.poll() is None, "the projector exited:\n" + (
        fault_stack.projector.tail(30)
    )
    assert "retrying" in fault_stack.projector.log_text()
