"""Restart the Kafka broker while submits arrive: 503 while it is down, every 202 processed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tests.faults.conftest import FaultStack, assert_all_final, assert_one_outcome_each, new_ids

pytestmark = [pytest.mark.infra, pytest.mark.faults]
SUBMIT_SECONDS = 30


async def test_broker_restart_during_submits(fault_stack: FaultStack, infra: Any) -> None:
    infra.require_stack()
    answers: list[tuple[str, int, float]] = []
    stop = threading.Event()

    def submit_loop() -> None:
        for rid in new_ids("restart", 400):
            if stop.is_set():
                return
            started = time.monotonic()
            try:
                code = fault_stack.submit(rid).status_code
            except Exception:  # a hang or a reset is a failure of the contract
                code = -1
            answers.append((rid, code, time.monotonic() - started))
            time.sleep(1.0)

    submitter = threading.Thread(target=submit_loop)
    submitter.start()
    try:
        await asyncio.sleep(5)
        await asyncio.to_thread(infra.stop, "kafka")
        await asyncio.sleep(8)
        await asyncio.to_thread(infra.start, "kafka")
        await asyncio.sleep(SUBMIT_SECONDS - 13)
    finally:
        stop.set()
        await asyncio.to_thread(submitter.join, 60)

    codes = {code for _, code, _ in answers}
    assert codes <= {202, 503}, (
        f"unexpected answers: {[a for a in answers if a[1] not in (202, 503)]}"
    )
    assert 503 in codes, "the broker outage was never noticed"
    slowest = max(seconds for _, _, seconds in answers)
    assert slowest < float(fault_stack.env["KAFKA_PUBLISH_TIMEOUT"]) + 5, slowest
    accepted = [rid for rid, code, _ in answers if code == 202]
    after = [rid for rid, code, _ in answers[len(answers) // 2 :] if code == 202]
    assert after, "no submit was accepted after the broker came back"
    final = await asyncio.to_thread(fault_stack.wait_terminal, accepted, 180)
    assert_all_final(final)
    assert {b["status"] for b in final.values()} == {"COMPLETED"}
    await assert_one_outcome_each(fault_stack.env, accepted)
