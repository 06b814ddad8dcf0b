"""The projector loop: consume submit and result events, apply them to Redis, log the change.

Every change that Redis accepts (or already holds) is also written to the compacted status topic,
which is what `stt projector --rebuild` reads back. Events are projected a fetched batch at a
time (`batch`); offsets are committed only after Redis and the status topic both have the batch,
so a crash replays events, and the ordering rule in `job_store` makes the replay harmless.

When Redis or Kafka is briefly unreachable the projector does not exit: the partition is
rewound to the batch that failed and fetched again after a growing pause (at most
`RETRY_MAX_SECONDS`), while the loop keeps polling so the group keeps this member.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from redis.exceptions import RedisError

from stt_common import bus, lifecycle, metrics
from stt_common.job_store import JobStore
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_projector.batch import BatchProjector

log = logging.getLogger(__name__)
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
        self.consumer = consumer
        self.batch = BatchProjector(settings, store, producer)
        self.stopping = stop

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

    async def _project(self, tp: TopicPartition, records: list[bus.Record]) -> bool:
        """Project `records`; False when that failed and the partition was rewound to them."""
        try:
            outcomes = await self.batch.project(records)
        except TRANSIENT as exc:
            first = records[0]
            log.warning(
                "projecting %s[%d]@%d..%d failed (%r); retrying",
                first.topic,
                first.partition,
                first.offset,
                records[-1].offset,
                exc,
            )
            self.consumer.seek(tp, first.offset)
            return False
        for outcome in outcomes:
            metrics.EVENTS_PROJECTED.labels(str(outcome or "dropped")).inc()
        await self._commit(tp, records[-1].offset + 1)
        return True

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
