"""The transcriber's handler on the shared consume loop: one job at a time, at-least-once.

With STT_CROSS_JOB_BATCH > 1 the same steps run for several jobs at once (`batch_scheduler`):
the loop hands every ready record to the scheduler, which admits them here (`admit`) and runs
each in its own task (`run_admitted`); their model calls are batched (`batcher`). Everything
below holds per job in both modes.

* `stt_common.consume.ConsumeLoop` fetches one record at a time (`CommitPolicy.ON_DONE`): an
  offset is committed only after the job's result (or retry, or dead letter) is acknowledged.
* While a job runs, every assigned partition is paused and the loop keeps polling
  (`while_polling`), so the group keeps this member however long the audio is.
* FENCING: a job's events go out only while this member holds the job's partition without a
  break since the job began (`ConsumeLoop.owns` with the lease taken at start); before the final
  result, a commit at the job's own offset asks the group coordinator itself, so a worker that
  was frozen past the session timeout and resumes stops its job and publishes nothing more.
  The next owner redoes the job; the ordering rule in `stt_common.job_store` keeps one result.
* Retry topics hold transient failures; their partitions are held (gate reason `not_due`) until
  the head is due, so waiting jobs never block new ones on the submit topic. `not_before` is
  honoured only there: on the submit topic the event is refused as invalid.
* Poison submit events (unreadable, invalid) are dead-lettered here, once: the transcriber
  group owns the submit topic's dead letters (the projector skips them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from stt_common import bus, claims, dead_letters, metrics, otel, tasks, tracing
from stt_common.consume import CommitPolicy, ConsumeLoop, HandedBack, Ready, Verdict
from stt_common.consume.lanes import Laned, submit_lanes
from stt_common.job_store import JobStore, settles
from stt_common.messages import (
    RETRY_TOPIC,
    ErrorType,
    JobStatus,
    ResultEvent,
    Stage,
    SubmitEvent,
)
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_transcriber.batch_scheduler import Admission, Admitted, BatchScheduler
from stt_transcriber.errors import JobError
from stt_transcriber.job_runner import JobRunner, Report
from stt_transcriber.outcomes import JobOutcome, Transient, retry_of, retrying

log = logging.getLogger(__name__)
POLL_WHILE_BUSY = 1.0  # seconds between keep-alive polls while a job runs
RUN_STOP_PATIENCE = 10.0  # seconds a fenced job's task gets to stop before it is left behind
NOT_DUE = "not_due"  # gate reason: the head of a retry topic waits for its not_before
CLAIMED = "claimed"  # gate reason: another worker holds the claim of the partition's next job
CLAIM_LOOK_AGAIN = 1.0  # seconds until a job claimed by another worker is looked at again


class Fenced(Exception):
    """This worker lost the job's partition: its events must not go out any more."""


class Worker:
    def __init__(
        self,
        settings: KafkaSettings,
        runner: JobRunner,
        store: JobStore,
        consumer: AIOKafkaConsumer,
        publisher: Publisher,
        stop: asyncio.Event,
        shutdown_grace: float,
        claim_lease: float = claims.DEFAULT_LEASE,
        batch: int = 1,
    ) -> None:
        """`batch` > 1: cross-job batches of up to that many jobs (`batch_scheduler`), with as
        many more held downloading and decoding meanwhile."""
        self.settings = settings
        self.runner = runner
        self.store = store
        self.publisher = publisher
        self.stop = stop
        self.shutdown_grace = shutdown_grace
        self.retry_steps = settings.retry_topics()
        self.consume = ConsumeLoop(
            consumer,
            Laned(self, submit_lanes(settings)),  # interactive lane first (consume/lanes.py)
            commit=CommitPolicy.ON_DONE if batch <= 1 else CommitPolicy.BEFORE_FETCH,
            stop=stop,
            dead_letter=self._give_up,
            max_records=1,
            by_partition=batch <= 1,
        )
        self.claims = claims.Claims(store.redis, runner.worker_id, claim_lease, store.ttl)
        self.scheduler = (
            BatchScheduler(self, self.consume, 2 * batch, shutdown_grace) if batch > 1 else None
        )

    def subscribe(self) -> None:
        topics = [*self.settings.submit_topics(), *(n for n, _ in self.retry_steps)]
        self.consume.subscribe(topics)

    async def run(self) -> None:
        await self.consume.run()

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        if self.scheduler is not None:  # cross-job batches: the scheduler runs them
            await self.scheduler.admit(ready)
            return
        for tp, records in ready.items():
            for record in records:
                with self.span(record):
                    admitted = await self.admit(tp, record)
                    if isinstance(admitted, Admitted):
                        await self.run_admitted(admitted, polling=True)

    async def stopping(self, loop: ConsumeLoop) -> None:
        if self.scheduler is not None:
            await self.scheduler.stopping()
        if self.runner.batcher is not None:
            await self.runner.batcher.close()

    @contextlib.contextmanager
    def span(self, record: bus.Record) -> Iterator[None]:
        """This worker's span of the job's trace: its log lines and the events it sends carry
        it (the task running the job, and its inference thread, inherit the context)."""
        incoming = tracing.from_kafka(record.headers)
        with (
            tracing.use(tracing.continue_from(incoming)),
            otel.hop("consume", incoming, **{"messaging.source.name": record.topic}),
        ):
            yield

    async def admit(self, tp: TopicPartition, record: bus.Record) -> Admitted | Admission:
        """Everything before a job runs: poison, not yet due, already final, its claim."""
        on_retry_topic = tp.topic not in self.settings.submit_topics()
        try:
            job = bus.decode(SubmitEvent, record.value, {RETRY_TOPIC: on_retry_topic})
        except (ValidationError, ValueError) as exc:
            await self._dead_letter(record, 1, "poison_event", f"unreadable submit event: {exc}")
            await self.consume.done(record)
            return Admission.SKIPPED
        if job.not_before and job.not_before > datetime.now(UTC):
            # Head of a retry topic not yet due: rewind and park the partition until it is.
            self.consume.rewind(tp, record.offset)
            self.consume.gate.hold(tp, NOT_DUE, until=job.not_before)
            return Admission.REWOUND
        if await self._already_final(job):
            log.info("already final; skipped", extra={"request_id": job.request_id})
            await self.consume.done(record)
            return Admission.SKIPPED
        claim = await self.claims.acquire(job)  # at most one run per generation (claims.py)
        if claim.outcome in (claims.ClaimOutcome.DONE, claims.ClaimOutcome.STALE):
            rid = {"request_id": job.request_id}
            log.info("copy of a %s job; skipped", claim.outcome, extra=rid)
            await self.consume.done(record)
            return Admission.SKIPPED
        if not claim.granted:  # another worker runs it: look again once its lease may be gone
            self.consume.rewind(tp, record.offset)
            if self.scheduler is None:
                await asyncio.sleep(CLAIM_LOOK_AGAIN)
            else:  # the other partitions' jobs go on meanwhile
                until = datetime.now(UTC) + timedelta(seconds=CLAIM_LOOK_AGAIN)
                self.consume.gate.hold(tp, CLAIMED, until=until)
            return Admission.REWOUND
        return Admitted(job, record, tp, claim, self.consume.lease(tp))

    async def run_admitted(self, admitted: Admitted, polling: bool) -> None:
        """Run an admitted job to its published outcome, then mark its record done.

        `polling` (one job at a time): every partition is paused and the loop kept polling
        while it runs (`while_polling`), and a failure to publish propagates (the loop rewinds
        and runs it again). Otherwise (cross-job batches) the loop polls by itself, and such a
        failure is retried here, claim held, since later jobs of the partition may be running.
        """
        job, record, claim, lease = admitted.job, admitted.record, admitted.claim, admitted.lease
        finished = False
        try:
            async with self.claims.renewing(claim):
                if polling:
                    await self.consume.while_polling(
                        self._execute(job, record, lease), POLL_WHILE_BUSY, self.shutdown_grace
                    )
                else:
                    await self._execute_until_out(job, record, lease)
            finished = True
        except HandedBack:
            log.warning(
                "shutdown: handing back the running job", extra={"request_id": job.request_id}
            )
            return
        except Fenced:
            log.warning(
                "partition lost while the job ran: stopped, nothing more published",
                extra={"request_id": job.request_id},
            )
            return
        finally:  # a job not finished here (handed back, fenced, failed to publish) is free again
            if finished:
                await self.claims.finish(job.job_id)
            else:
                await self.claims.release(job.job_id)
        await self.consume.done(record)

    async def _execute_until_out(self, job: SubmitEvent, record: bus.Record, lease: int) -> None:
        """`_execute` until its outcome is out, as the loop would retry the record: after a
        growing pause while the failure is transient, up to `attempts_before_dead_letter`
        times (then dead-lettered) when it is not; `Fenced` once the partition is lost."""
        errors = self.consume.errors
        for attempt in itertools.count(1):
            try:
                await self._execute(job, record, lease)
                return
            except Fenced:
                raise
            except Exception as exc:
                if errors.on_handle(exc) is Verdict.ISOLATE and (
                    attempt >= errors.attempts_before_dead_letter
                ):
                    log.error("job keeps failing (%r)", exc, extra={"request_id": job.request_id})
                    await self._give_up(record, f"could not be handled: {exc.__class__.__name__}")
                    return
                pause = min(errors.backoff_first * 2 ** (attempt - 1), errors.backoff_max)
                log.warning(
                    "outcome not published (%r); running the job again in %gs",
                    exc,
                    pause,
                    extra={"request_id": job.request_id},
                )
                await asyncio.sleep(pause)
                tp = TopicPartition(record.topic, record.partition)
                if not self.consume.owns(tp, lease):
                    raise Fenced() from exc

    async def _already_final(self, job: SubmitEvent) -> bool:
        try:
            current = await self.store.get(job.job_id)
        except Exception as exc:  # Redis is only a shortcut here; Kafka stays the truth
            log.warning("job lookup failed (%s); running the job", exc)
            return False
        return current is not None and settles(current, job.generation)

    async def _fence(self, record: bus.Record, lease: int, final: bool) -> None:
        """Raise `Fenced` unless this member still holds the record's partition (see module)."""
        tp = TopicPartition(record.topic, record.partition)
        if not self.consume.owns(tp, lease):
            raise Fenced()
        if final:
            # A commit that moves nothing (at the partition's first job not done: the job's own
            # offset, or an earlier one's while cross-job batches run), but the coordinator
            # checks the generation.
            pending = self.consume.offsets.first_pending(tp)
            at = record.offset if pending is None else min(pending, record.offset)
            try:
                await self.consume.consumer.commit({tp: at})
            except (CommitFailedError, IllegalStateError) as exc:
                raise Fenced() from exc
            if not self.consume.owns(tp, lease):
                raise Fenced()

    async def _execute(self, job: SubmitEvent, record: bus.Record, lease: int) -> None:
        """Run the job and publish its outcome; raises `Fenced` once the partition is lost, a
        Kafka error when the outcome could not be published (the loop rewinds: it runs again)."""
        started = asyncio.get_running_loop().time()
        metrics.job_picked_up(job.submitted_at, job.attempt)
        tp = TopicPartition(record.topic, record.partition)

        async def report(stage: Stage, share: float | None) -> None:
            if not self.consume.owns(tp, lease):
                return  # fenced: the job is being stopped; nothing more goes out
            # Progress is a courtesy to pollers: a broker hiccup must not fail the job.
            try:
                await self._publish(self.runner.progress(job, stage, share))
            except (KafkaError, OSError) as exc:
                log.warning(
                    "progress not published (%s)", exc, extra={"request_id": job.request_id}
                )

        may_retry = job.attempt <= len(self.retry_steps)
        outcome = await self._run_fenced(job, report, tp, lease, may_retry)
        await self._fence(record, lease, final=True)
        if isinstance(outcome, Transient):
            await self._retry(job, outcome.error)
            return
        result = outcome.result
        with otel.step("result publish", "PRODUCER"):
            await self._publish(result)
        metrics.job_finished(result, asyncio.get_running_loop().time() - started)
        if result.status is JobStatus.FAILED and result.error_type is not ErrorType.CANCELLED:
            await self._dead_letter(
                record, job.attempt, result.error_type or "failed", result.error or ""
            )
        log.info(
            "job %s",
            result.status,
            extra={"request_id": job.request_id, "processing_time": result.processing_time},
        )

    async def _run_fenced(
        self, job: SubmitEvent, report: Report, tp: TopicPartition, lease: int, may_retry: bool
    ) -> JobOutcome:
        """`runner.execute`, stopped (`Fenced`) as soon as this member no longer holds `tp`."""
        run = asyncio.ensure_future(self.runner.execute(job, report, may_retry))
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=POLL_WHILE_BUSY)
                if not run.done() and not self.consume.owns(tp, lease):
                    await tasks.stop(run, RUN_STOP_PATIENCE)
                    raise Fenced()
            return run.result()
        finally:
            if not run.done():  # handed back (cancelled): the job's run goes too
                run.cancel()

    async def _retry(self, job: SubmitEvent, error: JobError) -> None:
        topic, delay = self.retry_steps[job.attempt - 1]
        due = datetime.now(UTC) + timedelta(seconds=delay)
        await self.publisher.send_and_wait(
            topic,
            bus.encode(retry_of(job, due)),
            key=bus.key(job.job_id),
            headers=tracing.current_kafka_headers(),
        )
        await self.claims.hand_on(job.job_id, job.attempt + 1)
        await self._publish(
            retrying(self.runner.progress(job, Stage.RETRYING, None), job, delay, error)
        )
        log.info(
            "retrying in %gs after: %s",
            delay,
            error.message,
            extra={"request_id": job.request_id, "attempt": job.attempt},
        )

    async def _publish(self, event: ResultEvent) -> None:
        await self.publisher.send_and_wait(
            self.settings.topic_results,
            bus.encode(event),
            key=bus.key(event.job_id),
            headers=tracing.current_kafka_headers(),
        )

    async def give_up(self, record: bus.Record, reason: str) -> None:
        await self._give_up(record, reason)

    async def _give_up(self, record: bus.Record, reason: str) -> None:
        """The loop's last resort for a record that keeps failing (see consume/policy.py)."""
        await self._dead_letter(record, 1, "handler_error", reason)

    async def _dead_letter(
        self, record: bus.Record, attempt: int, error_type: str, message: str
    ) -> None:
        await dead_letters.send(
            self.publisher,
            self.settings.topic_dlq,
            record,
            group=self.settings.transcriber_group,
            attempt=attempt,
            error_type=error_type,
            message=message,
        )
