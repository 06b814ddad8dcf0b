"""One partition's batch of events into Redis and the status topic, in a few round trips.

Per batch: the cancellation markers of its jobs (one MGET), the ordering script for every event
in order (one pipeline), then the status events, queued together and acknowledged together. To
the caller it is all or nothing: if Redis or Kafka fails part way, the whole batch is projected
again, which the ordering rule makes harmless (an event already applied comes back SAME).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.structs import RecordMetadata

from stt_common import bus, cancellation, dead_letters, otel, tracing
from stt_common.job_store import ApplyOutcome, JobStore
from stt_common.messages import JobRecord
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_projector.projection import PoisonEvent, record_from

log = logging.getLogger(__name__)


@dataclass
class BatchProjector:
    settings: KafkaSettings
    store: JobStore
    publisher: Publisher

    async def project(self, records: Sequence[bus.Record]) -> list[ApplyOutcome | None]:
        """Each record's outcome, None where it was dropped (unreadable or deleted job)."""
        outcomes: list[ApplyOutcome | None] = [None] * len(records)
        started = time.time_ns()  # each event's "projection" span covers its batch
        jobs: list[tuple[int, JobRecord]] = []
        for i, record in enumerate(records):
            try:
                jobs.append((i, record_from(record.topic, record.value, self.settings)))
            except PoisonEvent as exc:
                if record.topic in self.settings.submit_topics():
                    # The transcriber group owns the submit topic's dead letters: one copy.
                    log.warning("%s; skipped (the transcriber dead-letters it)", exc)
                else:
                    await self.dead_letter(record, "poison_event", str(exc))
        live = await self._not_deleted(records, jobs)
        applied = await self.store.apply_many([job for _, job in live], time.time())
        # Deleted while this batch was being applied: the marker is there now; undo the write.
        written = [
            (i, j) for (i, j), o in zip(live, applied, strict=True) if o is ApplyOutcome.APPLIED
        ]
        undo = {i for i, _ in written} - {i for i, _ in await self._not_deleted(records, written)}
        for i, job in written:
            if i in undo:
                await self.store.delete(job.job_id)
        # SAME is re-logged too (an earlier run may have died before logging it), but as the
        # state Redis holds: a losing duplicate must never become the compacted value.
        same = [j.job_id for (_, j), o in zip(live, applied, strict=True) if o is ApplyOutcome.SAME]
        held_now = dict(zip(same, await self.store.get_many(same), strict=True))
        acks: list[asyncio.Future[RecordMetadata]] = []
        for (i, job), outcome in zip(live, applied, strict=True):
            if i in undo:
                continue
            outcomes[i] = outcome
            held = job if outcome is ApplyOutcome.APPLIED else held_now.get(job.job_id)
            if outcome in (ApplyOutcome.APPLIED, ApplyOutcome.SAME) and held is not None:
                acks.append(await self._log_state(held))
            with tracing.use(tracing.from_kafka(records[i].headers)):
                otel.record("projection", started, outcome=str(outcome), status=str(job.status))
                log.debug(
                    "%s %s gen=%d -> %s",
                    records[i].topic,
                    job.status,
                    job.generation,
                    outcome,
                    extra={"request_id": job.request_id},
                )
        if acks:
            await asyncio.gather(*acks)
        return outcomes

    async def _not_deleted(
        self, records: Sequence[bus.Record], jobs: list[tuple[int, JobRecord]]
    ) -> list[tuple[int, JobRecord]]:
        marks = await cancellation.cancelled_at_many(
            self.store.redis, [job.job_id for _, job in jobs]
        )
        kept = []
        for (i, job), at in zip(jobs, marks, strict=True):
            if cancellation.is_covered(at, job.submitted_at):
                with tracing.use(tracing.from_kafka(records[i].headers)):
                    log.info(
                        "deleted by its client; event dropped",
                        extra={"request_id": job.request_id},
                    )
            else:
                kept.append((i, job))
        return kept

    async def _log_state(self, held: JobRecord) -> asyncio.Future[RecordMetadata]:
        return await self.publisher.send(
            self.settings.topic_status, bus.encode(held), key=bus.key(held.job_id)
        )

    async def dead_letter(self, record: bus.Record, error_type: str, message: str) -> None:
        """Copy `record` to the dead-letter topic as the projector group's, once."""
        await dead_letters.send(
            self.publisher,
            self.settings.topic_dlq,
            record,
            group=self.settings.projector_group,
            attempt=1,
            error_type=error_type,
            message=message,
        )
