"""The consume side of cross-job batching: take several ready jobs at once and run them side by
side, so the model (`batcher.Batcher`) finds the next batch downloaded and decoded.

With STT_CROSS_JOB_BATCH > 1 the worker's consume loop fetches across partitions
(`by_partition=False`) and hands the ready records to `BatchScheduler.admit`. Record by record,
in offset order, it does what the one-job path does before a job runs (poison, not yet due,
already final, claim: `Jobs.admit`) and starts each admitted job in its own task
(`Jobs.run_admitted`: download, the model, fencing, result, claim settled, `done`). The loop
goes on polling meanwhile, so the group keeps this member however long the jobs take.

Invariants:
* at most `capacity` jobs are held at once (one batch on the model, the next one downloading and
  decoding: the bounded prefetch); at capacity every partition is paused (gate reason `full`),
  and each fetch asks for no more records than there is room for;
* a record is `done` only once its job's outcome is out (result, retry or dead letter); the loop
  commits each partition only up to the record before its first one not done
  (`CommitPolicy.BEFORE_FETCH`, `consume.Offsets`), so a crash re-delivers exactly the unfinished
  jobs, whose claims lapse after one lease; the ordering rule (`job_store.settles`) keeps a late
  duplicate from overwriting a final state;
* a partition rewound while admitting (a retry not yet due, a claim another worker holds, an
  error) takes none of its later records of that fetch: they are read again, in order. Rewinds
  only ever happen at the record being admitted, above every job of the partition still held,
  so no held job's offset is forgotten;
* on stop, held jobs get the shutdown grace, then are handed back (claims released, not done).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiokafka.structs import TopicPartition

from stt_common import bus, tasks
from stt_common.claims import Claim
from stt_common.consume import ConsumeLoop, Ready, Verdict
from stt_common.messages import SubmitEvent

log = logging.getLogger(__name__)
FULL = "full"  # gate reason: `capacity` jobs held; fetch nothing more until one ends
ADMIT_AGAIN = "admit_again"  # gate reason: admitting a record failed; read it again after a pause


class Admission(enum.Enum):
    SKIPPED = "skipped"  # nothing to run (poison dead-lettered, already final, a copy): done
    REWOUND = "rewound"  # read again later from this record: the partition's rest waits


@dataclass(frozen=True)
class Admitted:
    """A job this worker holds the claim of, ready to run."""

    job: SubmitEvent
    record: bus.Record
    tp: TopicPartition
    claim: Claim
    lease: int  # the partition's lease when the job began (fencing)


class Jobs(Protocol):
    """What the scheduler needs of the worker."""

    def span(self, record: bus.Record) -> AbstractContextManager[None]: ...

    async def admit(self, tp: TopicPartition, record: bus.Record) -> Admitted | Admission: ...

    async def run_admitted(self, admitted: Admitted, polling: bool) -> None: ...

    async def give_up(self, record: bus.Record, reason: str) -> None: ...


class BatchScheduler:
    def __init__(self, jobs: Jobs, loop: ConsumeLoop, capacity: int, grace: float) -> None:
        self.jobs = jobs
        self.loop = loop
        self.capacity = capacity
        self.grace = grace
        self.held: dict[asyncio.Task[None], Admitted] = {}
        self._failures: dict[tuple[TopicPartition, int], int] = {}
        self._regate()

    async def admit(self, ready: Ready) -> None:
        """Admit the ready records in offset order per partition; never raises (a failure is
        charged to its own record, see `_failed`), so no held job's record is ever rewound."""
        for tp, records in ready.items():
            for record in records:
                with self.jobs.span(record):  # the job's task inherits the trace context
                    try:
                        admitted = await self.jobs.admit(tp, record)
                    except Exception as exc:
                        await self._failed(tp, record, exc)
                        break
                    self._failures.pop((tp, record.offset), None)
                    if admitted is Admission.REWOUND:
                        break
                    if isinstance(admitted, Admitted):
                        self._start(admitted)
        self._regate()

    async def stopping(self) -> None:
        """Give the held jobs the shutdown grace, then hand back the rest."""
        if not self.held:
            return
        log.info("shutdown: waiting up to %gs for %d jobs", self.grace, len(self.held))
        _, pending = await asyncio.wait(set(self.held), timeout=self.grace)
        if pending:
            log.warning("shutdown: handing back %d unfinished jobs", len(pending))
        # Bounded, even where a cancel is swallowed (stt_common.tasks).
        await asyncio.gather(*(tasks.stop(task) for task in pending))

    def _start(self, admitted: Admitted) -> None:
        task = asyncio.create_task(self.jobs.run_admitted(admitted, False))
        self.held[task] = admitted
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        admitted = self.held.pop(task, None)
        if not task.cancelled() and task.exception() is not None and admitted is not None:
            log.error(  # run_admitted settles every outcome itself: this is a bug
                "job task failed: %r",
                task.exception(),
                extra={"request_id": admitted.job.request_id},
            )
        self._regate()

    def _regate(self) -> None:
        room = self.capacity - len(self.held)
        if room <= 0:
            self.loop.gate.hold_all(FULL)
        else:
            self.loop.gate.release_all(FULL)
        self.loop.max_records = max(1, room)

    async def _failed(self, tp: TopicPartition, record: bus.Record, exc: Exception) -> None:
        """As the loop treats a failing record: read it again after a growing pause; a
        non-transient failure, after `attempts_before_dead_letter` tries, is dead-lettered."""
        errors = self.loop.errors
        key = (tp, record.offset)
        self._failures[key] = failures = self._failures.get(key, 0) + 1
        if (
            errors.on_handle(exc) is Verdict.ISOLATE
            and failures >= errors.attempts_before_dead_letter
        ):
            log.error("%s[%d]@%d keeps failing (%r)", tp.topic, tp.partition, record.offset, exc)
            try:
                await self.jobs.give_up(record, f"could not be handled: {exc.__class__.__name__}")
            except Exception as dead:  # the dead letter itself failed: try again later
                log.warning("dead letter not sent (%r); retrying", dead)
            else:
                self._failures.pop(key, None)
                await self.loop.done(record)
                return
        pause = min(errors.backoff_first * 2 ** (failures - 1), errors.backoff_max)
        log.warning(
            "admitting %s[%d]@%d failed (%r); again in %gs",
            tp.topic,
            tp.partition,
            record.offset,
            exc,
            pause,
        )
        self.loop.rewind(tp, record.offset)
        self.loop.gate.hold(tp, ADMIT_AGAIN, until=datetime.now(UTC) + timedelta(seconds=pause))
