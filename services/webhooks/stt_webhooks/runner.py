"""The webhooks loop: read results, hand each terminal one with a callback_url to its own task.

* Deliveries run concurrently (STT_WEBHOOK_CONCURRENCY POSTs at once), so a receiver that hangs
  or keeps failing only holds its own task; when STT_WEBHOOK_MAX_PENDING deliveries are held
  (retries included), reading pauses until some finish.
* An offset is committed once its record and every earlier one are done: delivered,
  dead-lettered, or not a webhook. A partition taken away cancels its deliveries; its next owner
  starts them again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError
from redis.asyncio import Redis

from stt_common import bus, cancellation, dead_letters, metrics, otel, tracing
from stt_common.messages import JobStatus, ResultEvent
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings, WebhookSettings
from stt_webhooks.delivery import Deliverer, Outcome
from stt_webhooks.marks import Marks
from stt_webhooks.offsets import Offsets

log = logging.getLogger(__name__)
Record: TypeAlias = ConsumerRecord[bytes, bytes]


def webhook_of(record: Record) -> ResultEvent | None:
    """The result event if it asks for a webhook (terminal, with a callback_url)."""
    try:
        event = bus.decode(ResultEvent, record.value)
    except (ValidationError, ValueError):
        return None  # the projector dead-letters unreadable results; not ours to report twice
    if event.status is JobStatus.PROCESSING or not event.callback_url:
        return None
    return event


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: Webhooks) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.runner.commit()  # keep what is finished
        for tp in revoked:
            self.runner.drop(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass


class Webhooks:
    def __init__(
        self,
        kafka: KafkaSettings,
        hooks: WebhookSettings,
        consumer: AIOKafkaConsumer,
        producer: Publisher,
        redis: Redis,
        job_ttl: int,
        stop: asyncio.Event,
    ) -> None:
        self.kafka = kafka
        self.hooks = hooks
        self.consumer = consumer
        self.producer = producer
        self.redis = redis
        self.marks = Marks(redis, job_ttl)
        self.deliverer = Deliverer(hooks)
        self.stop = stop
        self.offsets = Offsets()
        self.tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # (request_id, generation) -> the task delivering it: a duplicate result waits for none.
        self.active: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.unsent: dict[TopicPartition, int] = {}  # commits that failed, tried again next time

    def subscribe(self) -> None:
        self.consumer.subscribe([self.kafka.topic_results], listener=_Rebalance(self))

    @property
    def pending(self) -> int:
        return sum(len(t) for t in self.tasks.values())

    async def run(self) -> None:
        lag = metrics.LagReporter(self.consumer)
        try:
            while not self.stop.is_set():
                await self.commit()
                room = self.hooks.webhook_max_pending - self.pending
                metrics.WEBHOOKS_PENDING.set(self.pending)
                if room <= 0:  # full: keep polling (group membership) without fetching
                    self.consumer.pause(*self.consumer.assignment())
                else:
                    self.consumer.resume(*self.consumer.assignment())
                batches = await self.consumer.getmany(
                    timeout_ms=200, max_records=min(500, max(room, 1))
                )
                await lag.maybe_update()
                for tp, records in batches.items():
                    for record in records:
                        self.take(tp, record)
        finally:  # unfinished deliveries are handed back uncommitted
            running = [t for tasks in self.tasks.values() for t in tasks]
            for tp in list(self.tasks):
                self.drop(tp, keep_tracking=True)
            await asyncio.gather(*running, return_exceptions=True)
            await self.commit()

    def take(self, tp: TopicPartition, record: Record) -> None:
        self.offsets.take(tp, record.offset)
        event = webhook_of(record)
        if event is None:
            self.offsets.finish(tp, record.offset)
            return
        task = asyncio.create_task(self.handle(tp, record, event))
        tasks = self.tasks.setdefault(tp, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def drop(self, tp: TopicPartition, keep_tracking: bool = False) -> None:
        dropped = self.tasks.pop(tp, set())
        for task in dropped:
            task.cancel()
        # At once, not when the tasks see their cancellation: the next owner may be this process.
        self.active = {k: t for k, t in self.active.items() if t not in dropped}
        if not keep_tracking:
            self.offsets.forget(tp)

    async def commit(self) -> None:
        assigned = self.consumer.assignment()
        moves = self.unsent | self.offsets.committable()
        moves = {tp: offset for tp, offset in moves.items() if tp in assigned}
        self.unsent = {}
        if not moves:
            return
        try:
            await self.consumer.commit(moves)
        except (CommitFailedError, IllegalStateError) as exc:  # the partitions moved meanwhile
            log.warning("commit refused (%s); some webhooks may be sent twice", exc)
        except KafkaError as exc:
            log.warning("commit failed (%s); trying again", exc)
            self.unsent = moves

    async def handle(self, tp: TopicPartition, record: Record, event: ResultEvent) -> None:
        # A span of the job's trace (with OTEL_EXPORTER_OTLP_ENDPOINT), child of its result.
        with tracing.use(tracing.from_kafka(record.headers)), otel.step("webhook", "CLIENT"):
            await self._handle(tp, record, event)

    async def _handle(self, tp: TopicPartition, record: Record, event: ResultEvent) -> None:
        key = (event.job_id, event.generation)
        extra = {"request_id": event.request_id}
        me = asyncio.current_task()
        if key in self.active:
            metrics.WEBHOOK_DELIVERIES.labels("skipped").inc()
            log.info("webhook in progress; duplicate result skipped", extra=extra)
            self.offsets.finish(tp, record.offset)
            return
        assert me is not None
        self.active[key] = me  # before any await, so a duplicate in the same batch sees it
        try:
            if await self.marks.done(*key):
                metrics.WEBHOOK_DELIVERIES.labels("skipped").inc()
                log.info("webhook already sent; duplicate result skipped", extra=extra)
            elif await self._cancelled(event):
                metrics.WEBHOOK_DELIVERIES.labels("skipped").inc()
                log.info("job deleted by its client; no webhook", extra=extra)
            else:
                await self._conclude(record, event, await self._deliver(record, event))
                await self.marks.mark(*key)
        finally:
            if self.active.get(key) is me:
                del self.active[key]
        self.offsets.finish(tp, record.offset)

    async def _deliver(self, record: Record, event: ResultEvent) -> Outcome:
        deadline = record.timestamp / 1000 + self.hooks.webhook_retry_seconds
        try:
            return await self.deliverer.deliver(event, event.callback_url or "", deadline)
        except Exception as exc:  # a bug must not stall the partition's commits forever
            log.exception("webhook crashed", extra={"request_id": event.request_id})
            return Outcome(False, 1, f"internal error: {exc.__class__.__name__}")

    async def _cancelled(self, event: ResultEvent) -> bool:
        try:
            return await cancellation.covers(self.redis, event.job_id, event.submitted_at)
        except Exception as exc:  # Redis down: deliver; the receiver may get a deleted job's end
            log.warning("cancel check failed (%s); delivering", exc)
            return False

    async def _conclude(self, record: Record, event: ResultEvent, outcome: Outcome) -> None:
        extra = {"request_id": event.request_id, "attempt": outcome.attempts}
        if outcome.delivered:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            log.info("webhook delivered", extra=extra)
            return
        delay = 1.0
        while True:  # the dead letter must get out before the offset may be committed
            try:
                await dead_letters.send(
                    self.producer,
                    self.kafka.topic_dlq,
                    record,
                    group=self.kafka.webhooks_group,
                    attempt=outcome.attempts,
                    error_type=dead_letters.WEBHOOK_FAILED,
                    message=outcome.reason,
                )
                break
            except KafkaError as exc:
                log.warning("dead letter not sent (%s); trying again", exc, extra=extra)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
        metrics.WEBHOOK_DELIVERIES.labels("dead_lettered").inc()
