"""Stopping helper tasks for sure.

A `task.cancel()` is one CancelledError delivered at the task's current await, and a library
may swallow it: redis-py's asyncio client returns normally from a command cancelled in flight
about one time in five (measured with redis-py 5.2 to 8.1 on CPython 3.11). A helper task that
loops around Redis calls (a claim's renewal, a cancel watch) then runs on for ever, and
`task.cancel(); await task` waits for ever: the soak (tests/faults/test_soak.py) found a
transcriber stuck that way, renewing the claim of a job it no longer ran, and every copy of the
job waiting on that claim.

Invariants: `stop` returns within `patience` seconds whatever the task does; a loop that checks
`cancel_requested()` after each library call ends even when the CancelledError was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)
RECANCEL_EVERY = 0.1  # seconds between cancels of a task that is still running


def cancel_requested() -> bool:
    """Whether the running task was asked to stop (even if the CancelledError was swallowed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop(task: asyncio.Task[Any], patience: float = 5.0) -> None:
    """Cancel `task` and wait until it ends, cancelling it again every RECANCEL_EVERY s (a cancel
    it swallowed); after `patience` s it is left to end by itself, with an error logged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_EVERY)
        if not task.done() and loop.time() >= deadline:
            log.error("task %s did not stop within %gs; left behind", task.get_name(), patience)
            return
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()  # retrieved: no "exception was never retrieved" warning
