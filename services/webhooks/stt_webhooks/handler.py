"""The webhooks loop: read results, hand each terminal one with a callback_url to its own task.

* Deliveries run concurrently (STT_WEBHOOK_CONCURRENCY POSTs at once), so a receiver that hangs
  or keeps failing only holds its own task; when STT_WEBHOOK_MAX_PENDING deliveries are held
  (retries included), reading pauses until some finish.
* Runs on the shared consume loop (`stt_common.consume`) with `CommitPolicy.BEFORE_FETCH`: an
  offset is committed once its record and every earlier one are done: delivered,
  dead-lettered, or not a webhook. A partition taken away cancels its deliveries; its next owner
  starts them again. The pending limit is a gate reason (`full`) that pauses every partition.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError
from redis.asyncio import Redis

from stt_common import bus, cancellation, dead_letters, metrics, otel, tracing
from stt_common.consume import CommitPolicy, ConsumeLoop, Ready
from stt_common.messages import JobStatus, ResultEvent
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings, WebhookSettings
from stt_webhooks.delivery import Deliverer, DeliveryOutcome
from stt_webhooks.marks import Marks

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


FULL = "full"  # gate reason: STT_WEBHOOK_MAX_PENDING deliveries are held


class Webhooks:
    def __init__(
        self,
        kafka: KafkaSettings,
        hooks: WebhookSettings,
        consumer: AIOKafkaConsumer,
        publisher: Publisher,
        redis: Redis,
        job_ttl: int,
        stop: asyncio.Event,
    ) -> None:
        self.kafka = kafka
        self.hooks = hooks
        self.publisher = publisher
        self.redis = redis
        self.marks = Marks(redis, job_ttl)
        self.deliverer = Deliverer(hooks)
        self.stop = stop
        self.tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # (request_id, generation) -> the task delivering it: a duplicate result waits for none.
        self.active: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.consume = ConsumeLoop(
            consumer,
            self,
            commit=CommitPolicy.BEFORE_FETCH,
            stop=stop,
            dead_letter=self._give_up,
            fetch_timeout_ms=200,
        )

    def subscribe(self) -> None:
        self.consume.subscribe([self.kafka.topic_results])

    @property
    def pending(self) -> int:
        return sum(len(t) for t in self.tasks.values())

    async def run(self) -> None:
        await self.consume.run()

    def before_fetch(self, loop: ConsumeLoop) -> None:
        room = self.hooks.max_pending - self.pending
        metrics.WEBHOOKS_PENDING.set(self.pending)
        if room <= 0:  # full: keep polling (group membership) without fetching
            loop.gate.hold_all(FULL)
        else:
            loop.gate.release_all(FULL)
        loop.max_records = min(500, max(room, 1))

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        for tp, records in ready.items():
            for record in records:
                await self.take(tp, record)

    async def revoked(self, revoked: list[TopicPartition], loop: ConsumeLoop) -> None:
        for tp in revoked:
            self.drop(tp)

    async def stopping(self, loop: ConsumeLoop) -> None:
        """Unfinished deliveries are handed back uncommitted."""
        running = [t for tasks in self.tasks.values() for t in tasks]
        for tp in list(self.tasks):
            self.drop(tp)
        await asyncio.gather(*running, return_exceptions=True)

    async def take(self, tp: TopicPartition, record: Record) -> None:
        event = webhook_of(record)
        if event is None:
            await self.consume.done(record)
            return
        task = asyncio.create_task(self.deliver_one(tp, record, event))
        tasks = self.tasks.setdefault(tp, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def drop(self, tp: TopicPartition) -> None:
        dropped = self.tasks.pop(tp, set())
        for task in dropped:
            task.cancel()
        # At once, not when the tasks see their cancellation: the next owner may be this process.
        self.active = {k: t for k, t in self.active.items() if t not in dropped}

    async def _give_up(self, record: Record, reason: str) -> None:
        await dead_letters.send(
            self.publisher,
            self.kafka.topic_dlq,
            record,
            group=self.kafka.webhooks_group,
            attempt=1,
            error_type="handler_error",
            message=reason,
        )

    async def deliver_one(self, tp: TopicPartition, record: Record, event: ResultEvent) -> None:
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
            await self.consume.done(record)
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
        await self.consume.done(record)

    async def _deliver(self, record: Record, event: ResultEvent) -> DeliveryOutcome:
        deadline = record.timestamp / 1000 + self.hooks.retry_seconds
        try:
            return await self.deliverer.deliver(event, event.callback_url or "", deadline)
        except Exception as exc:  # a bug must not stall the partition's commits forever
            log.exception("webhook crashed", extra={"request_id": event.request_id})
            return DeliveryOutcome(False, 1, f"internal error: {exc.__class__.__name__}")

    async def _cancelled(self, event: ResultEvent) -> bool:
        try:
            return await cancellation.covers(self.redis, event.job_id, event.submitted_at)
        except Exception as exc:  # Redis down: deliver; the receiver may get a deleted job's end
            log.warning("cancel check failed (%s); delivering", exc)
            return False

    async def _conclude(self, record: Record, event: ResultEvent, outcome: DeliveryOutcome) -> None:
        extra = {"request_id": event.request_id, "attempt": outcome.attempts}
        if outcome.delivered:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            log.info("webhook delivered", extra=extra)
            return
        delay = 1.0
        while True:  # the dead letter must get out before the offset may be committed
            try:
                await dead_letters.send(
                    self.publisher,
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
