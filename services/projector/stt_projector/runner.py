"""The projector loop: consume submit and result events, apply them to Redis, log the change.

Every change that Redis accepts (or already holds) is also written to the compacted status topic,
which is what `stt projector --rebuild` reads back. Offsets are committed only after both, so a
crash replays events, and the ordering rule in `job_store` makes the replay harmless.

When Redis or Kafka is briefly unreachable the projector does not exit: the partition is
rewound to the event that failed and fetched again after a growing pause (at most
`RETRY_MAX_SECONDS`), while the loop keeps polling so the group keeps this member.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from redis.exceptions import RedisError

from stt_common import bus, cancellation, dead_letters, lifecycle, metrics, tracing
from stt_common.job_store import JobStore, Outcome
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_projector.projection import PoisonEvent, record_from

log = logging.getLogger(__name__)
Record: TypeAlias = ConsumerRecord[bytes, bytes]
TRANSIENT = (RedisError, KafkaError, OSError)
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0


class Projector:
    def __init__(
        self,
        settings: KafkaSettings,
        store: JobStore,
        consumer: AIOKafkaConsumer,
        producer: Publisher,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.store = store
        self.consumer = consumer
        self.producer = producer
        self.stopping = stop

    async def handle(self, record: Record) -> Outcome | None:
        try:
            job = record_from(record.topic, record.value, self.settings)
        except PoisonEvent as exc:
            await dead_letters.send(
                self.producer,
                self.settings.topic_dlq,
                record,
                group=self.settings.projector_group,
                attempt=1,
                error_type="poison_event",
                message=str(exc),
            )
            return None
        if await cancellation.covers(self.store.redis, job.request_id, job.submitted_at):
            log.info("deleted by its client; event dropped", extra={"request_id": job.request_id})
            return None
        outcome = await self.store.apply(job, time.time())
        if outcome is Outcome.APPLIED and await cancellation.covers(
            self.store.redis, job.request_id, job.submitted_at
        ):  # deleted while this event was being applied
            await self.store.delete(job.request_id)
            return None
        # SAME is re-logged too (an earlier run may have died before logging it), but as the
        # state Redis holds: a losing duplicate must never become the compacted value.
        held = job if outcome is Outcome.APPLIED else None
        if outcome is Outcome.SAME:
            held = await self.store.get(job.request_id)
        if held is not None:
            await self.producer.send_and_wait(
                self.settings.topic_status, bus.encode(held), key=bus.key(held.request_id)
            )
        log.debug(
            "%s %s gen=%d -> %s",
            record.topic,
            job.status,
            job.generation,
            outcome,
            extra={"request_id": job.request_id},
        )
        return outcome

    async def run(self) -> None:
        lag = metrics.LagReporter(self.consumer)
        pause = RETRY_FIRST_SECONDS
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
            await lag.maybe_update()
            stalled = False
            for tp, records in batches.items():
                stalled |= not await self._project(tp, records)
            if stalled:
                await self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX_SECONDS)
            else:
                pause = RETRY_FIRST_SECONDS

    async def _project(self, tp: TopicPartition, records: list[Record]) -> bool:
        """Apply `records` in order; False when one failed and the partition was rewound to it."""
        done = 0
        try:
            for record in records:
                # The job's trace, from the event's header: its log lines carry trace_id.
                with tracing.use(tracing.from_kafka(record.headers)):
                    outcome = await self.handle(record)
                metrics.EVENTS_PROJECTED.labels(str(outcome or "dropped")).inc()
                done += 1
        except TRANSIENT as exc:
            failed = records[done]
            log.warning(
                "projecting %s[%d]@%d failed (%r); retrying",
                failed.topic,
                failed.partition,
                failed.offset,
                exc,
            )
            self.consumer.seek(tp, failed.offset)
        if done:
            await self._commit(tp, records[done - 1].offset + 1)
        return done == len(records)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: offset})
        except KafkaError as exc:  # lost in a rebalance: the new owner re-applies, harmlessly
            log.warning("commit of %s@%d refused (%r)", tp, offset, exc)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass


async def run_projector(settings: KafkaSettings, store: JobStore, stop: asyncio.Event) -> None:
    await bus.ensure_topics(settings)
    consumer = bus.consumer(
        settings, settings.topic_submit, settings.topic_results, group=settings.projector_group
    )
    producer = Publisher(settings)
    async with lifecycle.kafka_clients(consumer, producer):
        log.info("projector ready")
        await Projector(settings, store, consumer, producer, stop).run()
