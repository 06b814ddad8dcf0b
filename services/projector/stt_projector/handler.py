"""The projector's handler on the shared consume loop: submit and result events into Redis.

Every change that Redis accepts (or already holds) is also written to the compacted status topic,
which is what `stt projector --rebuild` reads back. Events are projected a fetched batch per
partition at a time (`batch`); each partition is committed (`CommitPolicy.ON_DONE`) only after
Redis and the status topic both have its batch, so a crash replays events, and the ordering rule
in `job_store` makes the replay harmless.

When Redis or Kafka is briefly unreachable the projector does not exit: the loop's error policy
(`stt_common.consume.policy`) rewinds the partition to the batch that failed and fetches it again
after a growing pause, while polling on so the group keeps this member. A record that fails for
any other reason is isolated and, after a few attempts, dead-lettered: it never stops its
partition.

Dead letters: the projector owns those of the results topic. Unreadable or invalid events on
the submit topic are skipped here; the transcriber group dead-letters them, once.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from stt_common import bus, lifecycle, metrics
from stt_common.consume import CommitPolicy, ConsumeLoop, Ready
from stt_common.job_store import JobStore
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_projector.batch import BatchProjector

log = logging.getLogger(__name__)


class Projector:
    def __init__(
        self,
        settings: KafkaSettings,
        store: JobStore,
        consumer: AIOKafkaConsumer,
        publisher: Publisher,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.batch = BatchProjector(settings, store, publisher)
        self.consume = ConsumeLoop(
            consumer,
            self,
            commit=CommitPolicy.ON_DONE,
            stop=stop,
            dead_letter=self._give_up,
            max_records=500,
        )

    def subscribe(self) -> None:
        self.consume.subscribe([*self.settings.submit_topics(), self.settings.topic_results])

    async def run(self) -> None:
        await self.consume.run()

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        for records in ready.values():
            outcomes = await self.batch.project(records)
            for outcome in outcomes:
                metrics.EVENTS_PROJECTED.labels(str(outcome or "dropped")).inc()
            await loop.done(*records)

    async def _give_up(self, record: bus.Record, reason: str) -> None:
        await self.batch.dead_letter(record, "handler_error", reason)


async def run_projector(settings: KafkaSettings, store: JobStore, stop: asyncio.Event) -> None:
    await bus.ensure_topics(settings)
    consumer = bus.consumer(settings, group=settings.projector_group)
    publisher = Publisher(settings)
    projector = Projector(settings, store, consumer, publisher, stop)
    projector.subscribe()
    async with lifecycle.kafka_clients(consumer, publisher):
        log.info("projector ready")
        await projector.run()
