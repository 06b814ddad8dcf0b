"""Long polls (`?wait=`) share one Redis read per step instead of one each.

Every request waiting on a PROCESSING job registers here and sleeps on a future; one task per
API process reads all the waited jobs in one pipeline every `STEP` seconds and wakes the
requests whose job has changed status (or vanished). So N long polls cost one pooled connection
for one round trip per step, not N connections and N reads, and a request holds no connection
while it sleeps.

Invariant: a waiter is woken with the record read in the step after its job left PROCESSING
(or with None once the job is gone), or with the Redis error that step raised; a waiter whose
time runs out is removed by its own request, which then reads the job once more itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, JobStatus

log = logging.getLogger(__name__)
STEP: Final = 0.1  # seconds between reads of the waited jobs


class LongPolls:
    def __init__(self, store: JobStore, step: float = STEP) -> None:
        self.store = store
        self.step = step
        self.waiting: dict[str, set[asyncio.Future[JobRecord | None]]] = {}
        self.task: asyncio.Task[None] | None = None

    async def wait(self, request_id: str, seconds: float) -> JobRecord | None:
        """The job's record once it is no longer PROCESSING (None once it is gone), or, after
        `seconds`, as it is then. Raises what reading Redis raised."""
        future: asyncio.Future[JobRecord | None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(request_id, set()).add(future)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            return await self.store.get(request_id)
        finally:
            waiters = self.waiting.get(request_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self.waiting[request_id]
            future.cancel()  # no-op when resolved; otherwise nobody awaits it any more

    async def _run(self) -> None:
        while self.waiting:
            await asyncio.sleep(self.step)
            ids = list(self.waiting)
            try:
                records = await self.store.get_many(ids)
            except Exception as exc:  # every waiter answers it (503 for Redis errors)
                self._wake(ids, error=exc)
                continue
            done = [
                (rid, record)
                for rid, record in zip(ids, records, strict=True)
                if record is None or record.status is not JobStatus.PROCESSING
            ]
            for rid, record in done:
                self._wake([rid], record=record)

    def _wake(
        self, ids: list[str], record: JobRecord | None = None, error: Exception | None = None
    ) -> None:
        for rid in ids:
            for future in self.waiting.pop(rid, set()):
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(record)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
