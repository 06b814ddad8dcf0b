"""Issue 13 item 6 through the real stack: a worker frozen (SIGSTOP) past the session timeout
loses its partition; another member takes the job over and finishes it. Once thawed (SIGCONT)
the frozen one publishes nothing more for the job: no second COMPLETED, and the progress the
projector accepted never went backwards."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from stt_common.messages import JobStatus, ResultEvent
from stt_testing import kafka_tools
from tests.faults.conftest import FaultStack, new_ids, status_history
from tests.faults.test_worker_crashes import owner_when_transcribing

pytestmark = [pytest.mark.infra, pytest.mark.faults]
SESSION_TIMEOUT = 6.0  # KAFKA_SESSION_TIMEOUT_MS of the fault stack


async def test_a_worker_frozen_past_the_session_timeout_publishes_nothing_after_it_thaws(
    fault_stack: FaultStack, infra: Any
) -> None:
    (rid,) = new_ids("frozen", 1)
    assert fault_stack.submit(rid).status_code == 202
    frozen = await owner_when_transcribing(fault_stack, infra, rid)
    assert frozen.proc is not None
    frozen_id = f"-{frozen.proc.pid}"
    frozen.signal(signal.SIGSTOP)
    try:
        (body,) = (await asyncio.to_thread(fault_stack.wait_terminal, [rid], 90)).values()
        assert body["status"] == "COMPLETED", body
    finally:
        frozen.signal(signal.SIGCONT)
    await asyncio.sleep(SESSION_TIMEOUT + 4)  # the thawed worker's job would be done by now

    records = await kafka_tools.keyed_records(
        fault_stack.env["KAFKA_BOOTSTRAP_SERVERS"], fault_stack.env["KAFKA_TOPIC_RESULTS"], {rid}
    )
    results = [ResultEvent.model_validate_json(r.value or b"") for r in records]
    completed = [r for r in results if r.status is JobStatus.COMPLETED]
    assert len(completed) == 1, [(r.status, r.worker) for r in results]
    assert not (completed[0].worker or "").endswith(frozen_id)
    assert frozen.proc.poll() is None, frozen.tail()  # fenced, not crashed

    history = (await status_history(fault_stack.env, {rid}))[rid]
    running = [(j.attempt, j.progress) for j in history if j.status is JobStatus.PROCESSING]
    shares = [p if p is not None else -1.0 for _, p in running]
    assert shares == sorted(shares), running  # one attempt here: progress only ever rose
