"""The transcriber's consumer loop: one job at a time, at-least-once, never evicted mid-job.

* While a job runs, every assigned partition is paused and `getmany` keeps being called, so the
  group keeps this member however long the audio is (max.poll.interval.ms is never exceeded).
* An offset is committed only after the job's result (or retry, or dead letter) is acknowledged.
  A partition lost during the job is not committed: its next owner redoes the job, and the
  ordering rule in `stt_common.job_store` makes the second result harmless.
* Retry topics hold transient failures; their partitions are paused until the head is due, so
  waiting jobs never block new ones on the submit topic.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from stt_common import bus, dead_letters, metrics, otel, tracing
from stt_common.job_store import JobStore
from stt_common.messages import JobStatus, Phase, ResultEvent, SubmitEvent
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_transcriber.errors import JobError
from stt_transcriber.job_runner import JobRunner

log = logging.getLogger(__name__)
POLL_WHILE_BUSY = 1.0  # seconds between keep-alive polls while a job runs


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.worker.waiting.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if self.worker.busy:
            self.worker.consumer.pause(*assigned)


class Worker:
    def __init__(
        self,
        settings: KafkaSettings,
        runner: JobRunner,
        store: JobStore,
        consumer: AIOKafkaConsumer,
        producer: Publisher,
        stop: asyncio.Event,
        shutdown_grace: float,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.store = store
        self.consumer = consumer
        self.producer = producer
        self.stop = stop
        self.shutdown_grace = shutdown_grace
        self.retry_steps = settings.retry_topics()
        self.waiting: dict[TopicPartition, datetime] = {}  # retry partitions paused until due
        self.busy = False
        self.lag = metrics.LagReporter(consumer)

    def subscribe(self) -> None:
        topics = [self.settings.topic_submit, *(name for name, _ in self.retry_steps)]
        self.consumer.subscribe(topics, listener=_Rebalance(self))

    async def run(self) -> None:
        while not self.stop.is_set():
            self._resume_due()
            batches = await self.consumer.getmany(timeout_ms=500, max_records=1)
            await self.lag.maybe_update()
            for tp, records in batches.items():
                for record in records:
                    await self._handle(tp, record)

    def _resume_due(self) -> None:
        now = datetime.now(UTC)
        for tp, due in list(self.waiting.items()):
            if due <= now:
                del self.waiting[tp]
                if tp in self.consumer.assignment():
                    self.consumer.resume(tp)

    async def _handle(self, tp: TopicPartition, record: bus.Record) -> None:
        # This worker's span of the job's trace: its log lines and the events it sends carry it
        # (the task running the job, and its inference thread, inherit the context).
        incoming = tracing.from_kafka(record.headers)
        with (
            tracing.use(tracing.continue_from(incoming)),
            otel.hop("consume", incoming, **{"messaging.source.name": record.topic}),
        ):
            await self._handle_job(tp, record)

    async def _handle_job(self, tp: TopicPartition, record: bus.Record) -> None:
        try:
            job = bus.decode(SubmitEvent, record.value)
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(record, 1, "poison_event", f"unreadable submit event: {exc}")
            await self._commit(tp, record)
            return
        if job.not_before and job.not_before > datetime.now(UTC):
            # Head of a retry topic not yet due: rewind and park the partition until it is.
            self.consumer.seek(tp, record.offset)
            self.consumer.pause(tp)
            self.waiting[tp] = job.not_before
            return
        if await self._already_final(job):
            log.info("already final; skipped", extra={"request_id": job.request_id})
            await self._commit(tp, record)
            return
        if await self._run_while_polling(job, record):
            await self._commit(tp, record)
        elif not self.stop.is_set():
            self.consumer.seek(tp, record.offset)  # could not publish the outcome: redo later
            await asyncio.sleep(1)

    async def _already_final(self, job: SubmitEvent) -> bool:
        try:
            current = await self.store.get(job.job_id)
        except Exception as exc:  # Redis is only a shortcut here; Kafka stays the truth
            log.warning("job lookup failed (%s); running the job", exc)
            return False
        if current is None:
            return False
        return current.generation > job.generation or (
            current.generation == job.generation and current.phase is Phase.TERMINAL
        )

    async def _run_while_polling(self, job: SubmitEvent, record: bus.Record) -> bool:
        """Run the job while polling with all partitions paused; True once its outcome is out."""
        self.busy = True
        self.consumer.pause(*self.consumer.assignment())
        task = asyncio.create_task(self._execute(job, record))
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=POLL_WHILE_BUSY)
                if self.stop.is_set() and deadline is None:
                    deadline = loop.time() + self.shutdown_grace
                if deadline is not None and loop.time() > deadline and not task.done():
                    log.warning(
                        "shutdown: handing back the running job",
                        extra={"request_id": job.request_id},
                    )
                    task.cancel()
                    return False
                await self._keep_alive()
            return task.result()
        except asyncio.CancelledError:
            return False
        finally:
            self.busy = False
            resumable = [tp for tp in self.consumer.assignment() if tp not in self.waiting]
            self.consumer.resume(*resumable)

    async def _keep_alive(self) -> None:
        self.consumer.pause(*self.consumer.assignment())  # partitions assigned since the last poll
        strays = await self.consumer.getmany(timeout_ms=0)
        for tp, records in strays.items():
            self.consumer.seek(tp, records[0].offset)  # not ours to run yet; fetch again later
        await self.lag.maybe_update()

    async def _execute(self, job: SubmitEvent, record: bus.Record) -> bool:
        started = asyncio.get_running_loop().time()
        metrics.job_picked_up(job.submitted_at, job.attempt)

        async def report(stage: str, share: float | None) -> None:
            # Progress is a courtesy to pollers: a broker hiccup must not fail the job.
            try:
                await self._publish(self.runner.progress(job, stage, share))
            except (KafkaError, OSError) as exc:
                log.warning(
                    "progress not published (%s)", exc, extra={"request_id": job.request_id}
                )

        try:
            try:
                result = await self.runner.run(job, report)
            except JobError as exc:
                if exc.detail:  # for operators only; the client is told exc.message
                    log.warning(
                        "%s: %s", exc.message, exc.detail, extra={"request_id": job.request_id}
                    )
                if exc.transient and job.attempt <= len(self.retry_steps):
                    await self._retry(job, exc)
                    return True
                result = self.runner.failed(job, exc, started)
            except Exception as exc:  # a bug must fail the job, not crash-loop the worker
                log.exception("job crashed", extra={"request_id": job.request_id})
                error = JobError(f"Internal error: {exc.__class__.__name__}", "internal", False)
                result = self.runner.failed(job, error, started)
            with otel.step("result publish", "PRODUCER"):
                await self._publish(result)
            metrics.job_finished(result, asyncio.get_running_loop().time() - started)
            if result.status is JobStatus.FAILED and result.error_type != "cancelled":
                await self._dead_letter(
                    record, job.attempt, result.error_type or "failed", result.error or ""
                )
            log.info(
                "job %s",
                result.status,
                extra={"request_id": job.request_id, "processing_time": result.processing_time},
            )
            return True
        except (KafkaError, OSError) as exc:
            log.warning("outcome not published (%s); the job will run again", exc)
            return False

    async def _retry(self, job: SubmitEvent, error: JobError) -> None:
        topic, delay = self.retry_steps[job.attempt - 1]
        due = datetime.now(UTC) + timedelta(seconds=delay)
        again = job.model_copy(update={"attempt": job.attempt + 1, "not_before": due})
        await self.producer.send_and_wait(
            topic,
            bus.encode(again),
            key=bus.key(job.job_id),
            headers=tracing.current_kafka_headers(),
        )
        note = f"retrying in {delay:g}s after: {error.message}"
        await self._publish(
            self.runner.progress(job, "retrying", None).model_copy(
                update={"attempt": job.attempt + 1, "error": note}
            )
        )
        log.info(note, extra={"request_id": job.request_id, "attempt": job.attempt})

    async def _publish(self, event: ResultEvent) -> None:
        await self.producer.send_and_wait(
            self.settings.topic_results,
            bus.encode(event),
            key=bus.key(event.job_id),
            headers=tracing.current_kafka_headers(),
        )

    async def _dead_letter(
        self, record: bus.Record, attempt: int, error_type: str, message: str
    ) -> None:
        await dead_letters.send(
            self.producer,
            self.settings.topic_dlq,
            record,
            group=self.settings.transcriber_group,
            attempt=attempt,
            error_type=error_type,
            message=message,
        )

    async def _commit(self, tp: TopicPartition, record: bus.Record) -> None:
        if tp not in self.consumer.assignment():
            return  # lost in a rebalance; the new owner decides
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit of %s@%d refused (%s); it may run twice", tp, record.offset, exc)
