"""One job, start to finish: fetch the media, check it, transcribe it, describe the outcome.

Knows nothing about consumer groups or offsets; `worker` decides when a job runs and what is
committed. Progress goes out through `report`, the outcome is returned as a result event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from stt_common import bus, otel, tasks
from stt_common.cancellation import CANCELLED_MESSAGE, CANCELLED_TYPE
from stt_common.messages import JobStatus, ResultEvent, Stage, SubmitEvent, origin_of
from stt_common.settings import FetchSettings, MinioSettings
from stt_transcriber import audio
from stt_transcriber.batch_clips import BatchItem
from stt_transcriber.batcher import Batcher, BatchStart
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import Engine, Transcript
from stt_transcriber.errors import JobError
from stt_transcriber.media_fetch import fetch_media
from stt_transcriber.outcomes import Finished, JobOutcome, Transient
from stt_transcriber.speed import SpeedModel

log = logging.getLogger(__name__)
Report = Callable[[Stage, float | None], Awaitable[None]]
Cancelled = Callable[[SubmitEvent], Awaitable[bool]]  # was the job deleted by its client?
PROGRESS_EVERY = 1.0  # seconds between progress events: fresh ETAs, yet no flood on long jobs
CANCEL_CHECK_EVERY = 1.0  # seconds between looks at the job's cancel marker while it runs
T = TypeVar("T")


class CancelWatch:
    """Looks every CANCEL_CHECK_EVERY seconds whether the client deleted the running job.

    Calling it answers from a flag, so the download (each chunk) and the inference thread
    (after decoding, between windows and segments) can ask as often as they like for nothing.
    `watch()` returns once the job is cancelled; it never raises (Redis down: the job goes on).
    """

    def __init__(self, job: SubmitEvent, cancelled: Cancelled | None) -> None:
        self.job = job
        self.cancelled = cancelled
        self.flag = threading.Event()

    def __call__(self) -> bool:
        return self.flag.is_set()

    async def watch(self) -> None:
        if self.cancelled is None:
            await asyncio.Event().wait()  # never: nothing can cancel
        assert self.cancelled is not None
        while True:
            await asyncio.sleep(CANCEL_CHECK_EVERY)
            try:
                if await self.cancelled(self.job):
                    self.flag.set()
                    return
            except Exception as exc:  # logged by the safe points' own check too
                log.debug("cancel check failed (%s)", exc)
            if tasks.cancel_requested():  # a stop that the Redis client swallowed (tasks.py)
                raise asyncio.CancelledError


# Kafka refuses records over ~1 MiB (the producer's max_request_size, the broker's
# message.max.bytes), and an outcome that cannot be published makes the job run again.
RESULT_MAX_BYTES = 900_000


class Eta:
    """When a running job should finish: first from the worker's speed model, then refined by
    the pace the job itself keeps (weighted by the share done), so pollers are told the truth
    even when the machine is slower or faster than usual.

    Invariant: it starts when the model starts on the job (`restart`: with cross-job batching,
    when its batch goes on the model, not while it waits behind another), and the speed model
    learns only the job's own share of the model's time (`model_seconds`), so a burst of queued
    jobs does not teach the worker that a lone job takes as long as the whole queue.
    """

    def __init__(self, began: datetime, expected: float | None) -> None:
        self.began = began
        self.expected = expected
        self.started = time.monotonic()
        self.share = 1.0  # of the model's time while this job is on it (a batch shares it)
        self.at = began + timedelta(seconds=expected) if expected is not None else None

    def restart(self, expected: float | None, share: float = 1.0) -> None:
        """The model starts on the job now, expected to take `expected` seconds."""
        self.began = datetime.now(UTC)
        self.expected = expected
        self.started = time.monotonic()
        self.share = share
        self.at = self.began + timedelta(seconds=expected) if expected is not None else None

    def model_seconds(self) -> float:
        """This job's share of the model's time since it started: what the speed model learns."""
        return (time.monotonic() - self.started) * self.share

    def refine(self, share: float, reached: float) -> None:
        """`share` of the audio was done at `reached` (time.monotonic())."""
        seconds = reached - self.started
        if not 0 < share < 1 or seconds <= 0:
            return
        by_pace = seconds / share
        total = by_pace if self.expected is None else share * by_pace + (1 - share) * self.expected
        self.at = self.began + timedelta(seconds=total)


def fit_in_a_record(result: ResultEvent, limit: int = RESULT_MAX_BYTES) -> ResultEvent:
    """`result`, or when its JSON is over `limit` bytes (hours of audio with word timestamps or
    segment details), the same without the segments' `words` and `tokens`: the transcript
    arrives without what was asked on top rather than never."""
    if result.segments is None or len(bus.encode(result)) <= limit:
        return result
    slim = [s.model_copy(update={"words": None, "tokens": None}) for s in result.segments]
    log.warning(
        "result over %d bytes: sent without words and tokens",
        limit,
        extra={"request_id": result.request_id},
    )
    return result.model_copy(update={"segments": slim})


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        fetch: FetchSettings,
        minio: MinioSettings,
        work_dir: Path,
        worker_id: str,
        cancelled: Cancelled | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        self.engine = engine
        self.batcher = batcher  # cross-job batches (STT_CROSS_JOB_BATCH > 1): see batcher.py
        self.cancelled = cancelled
        self.durations: dict[str, float] = {}  # audio length of running jobs, once probed
        self.etas: dict[str, Eta] = {}  # when running jobs should finish, once transcribing
        self.speed = SpeedModel()  # this worker's engine time per job length, measured
        self.fetch = fetch
        self.minio = minio
        self.work_dir = work_dir
        self.worker_id = worker_id

    def _result(self, job: SubmitEvent, status: JobStatus, **fields: object) -> ResultEvent:
        return ResultEvent(
            request_id=job.request_id,
            generation=job.generation,
            attempt=job.attempt,
            status=status,
            worker=self.worker_id,
            **origin_of(job),
            tenant=job.tenant,
            **fields,
        )

    def progress(self, job: SubmitEvent, stage: Stage, share: float | None) -> ResultEvent:
        # Duration and ETA let the API tell pollers when the result is worth asking for.
        duration = self.durations.get(job.job_id)
        eta = self.etas.get(job.job_id)
        return self._result(
            job,
            JobStatus.PROCESSING,
            stage=stage,
            progress=share,
            duration=duration,
            eta=eta.at if eta is not None else None,
        )

    async def _stop_if_cancelled(self, job: SubmitEvent) -> None:
        """A safe point: raises JobError("cancelled") when the client deleted the job."""
        try:
            cancelled = self.cancelled is not None and await self.cancelled(job)
        except Exception as exc:  # Redis down: the job goes on; its result is still wanted
            log.warning("cancel check failed (%s); going on", exc)
            return
        if cancelled:
            raise JobError(CANCELLED_MESSAGE, CANCELLED_TYPE)

    def failed(self, job: SubmitEvent, error: JobError, started: float) -> ResultEvent:
        return self._result(
            job,
            JobStatus.FAILED,
            stage=Stage.DONE,
            error=error.message,
            error_type=error.error_type,
            processing_time=round(time.monotonic() - started, 3),
        )

    async def execute(self, job: SubmitEvent, report: Report, may_retry: bool) -> JobOutcome:
        """Run the job to its outcome. Never raises for the job's own failures: a transient one
        is `Transient` while `may_retry`, any other (a bug included) a FAILED `Finished`."""
        started = time.monotonic()
        try:
            return Finished(await self.run(job, report))
        except JobError as exc:
            if exc.detail:  # for operators only; the client is told exc.message
                log.warning("%s: %s", exc.message, exc.detail, extra={"request_id": job.request_id})
            if exc.transient and may_retry:
                return Transient(exc)
            return Finished(self.failed(job, exc, started))
        except Exception as exc:  # a bug must fail the job, not crash-loop the worker
            log.exception("job crashed", extra={"request_id": job.request_id})
            error = JobError(f"Internal error: {exc.__class__.__name__}", "internal", False)
            return Finished(self.failed(job, error, started))

    async def run(self, job: SubmitEvent, report: Report) -> ResultEvent:
        """Transcribe `job`. Raises JobError; the caller decides between retry and FAILED."""
        started = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="job-", dir=self.work_dir))
        watch = CancelWatch(job, self.cancelled)
        watching = asyncio.create_task(watch.watch())
        if self.batcher is not None:  # a batch may wait for this job while it downloads
            self.batcher.expect(job.job_id)
        try:
            await self._stop_if_cancelled(job)
            await report(Stage.DOWNLOADING, None)
            with otel.step("download"):
                download = fetch_media(
                    job.media_url, scratch / "media", self.fetch, self.minio, watch
                )
                media = await _unless_cancelled(download, watching)
            with otel.step("probe"):
                duration = await asyncio.to_thread(audio.probe, media, self.fetch.max_audio_seconds)
            if duration > 0:
                self.durations[job.job_id] = round(duration, 3)
            await self._stop_if_cancelled(job)
            eta = Eta(datetime.now(UTC), self.speed.predict(duration))
            if self.batcher is None:  # the model is this job's now; else once its turn comes
                self.etas[job.job_id] = eta
            await report(Stage.TRANSCRIBING, 0.0)
            with otel.step("transcribe"):
                transcript = await self._transcribe(job, media, report, eta, watch, watching)
            self.speed.observe(transcript.duration, eta.model_seconds())
        finally:
            if self.batcher is not None:
                self.batcher.forget(job.job_id)
            self.durations.pop(job.job_id, None)
            self.etas.pop(job.job_id, None)
            shutil.rmtree(scratch, ignore_errors=True)
            await tasks.stop(watching)  # bounded, even if the watch swallowed a cancel
        return fit_in_a_record(
            self._result(
                job,
                JobStatus.COMPLETED,
                stage=Stage.DONE,
                progress=1.0,
                transcription=transcript.text,
                duration=round(transcript.duration, 3),
                confidence=round(transcript.confidence, 4),
                processing_time=round(time.monotonic() - started, 3),
                language=transcript.language,
                language_probability=(
                    None
                    if transcript.language_probability is None
                    else round(transcript.language_probability, 4)
                ),
                segments=transcript.segments,
                speech_seconds=transcript.speech_seconds,
                detected_language=transcript.detected_language,
                language_mismatch=transcript.language_mismatch,
                removed_segments=transcript.removed,
            )
        )

    async def _transcribe(
        self,
        job: SubmitEvent,
        media: Path,
        report: Report,
        eta: Eta,
        watch: CancelWatch,
        watching: asyncio.Task[None],
    ) -> Transcript:
        language = None if job.language == "auto" else job.language
        options = DecodeOptions.of(job)
        duration = self.durations.get(job.job_id, 0.0)
        if self.batcher is not None and self.batcher.takes(options, duration):
            item = BatchItem(media, language, options, watch)
            on_model = asyncio.Event()

            def on_start(start: BatchStart) -> None:
                predicted = [self.speed.predict(d) for d in start.durations]
                known = [p for p in predicted if p is not None]
                eta.restart(sum(known) if len(known) == len(predicted) else None, start.share)
                self.etas[job.job_id] = eta
                on_model.set()

            async def announce() -> None:  # the ETA, once the batch is on the model
                await on_model.wait()
                await _progress(job, report, 0.0)

            announcing = asyncio.create_task(announce())
            try:
                batch = self.batcher.transcribe(job.job_id, item, on_start)
                return await _unless_cancelled(batch, watching)
            finally:
                await tasks.stop(announcing)
        turn: AbstractAsyncContextManager[None] = (
            self.batcher.turn(job.job_id) if self.batcher is not None else contextlib.nullcontext()
        )
        async with turn:  # with a batcher, the model is shared: long files go between batches
            if self.batcher is not None:
                eta.restart(self.speed.predict(duration))
                self.etas[job.job_id] = eta
                await _progress(job, report, 0.0)  # with its ETA, now that it has the model
            return await self._alone(job, media, report, eta, watch, language, options)

    async def _alone(
        self,
        job: SubmitEvent,
        media: Path,
        report: Report,
        eta: Eta,
        watch: CancelWatch,
        language: str | None,
        options: DecodeOptions,
    ) -> Transcript:
        loop = asyncio.get_running_loop()
        latest: list[tuple[float, float]] = []  # (share done, when it was reached)
        last_sent = time.monotonic()

        def on_progress(share: float) -> None:  # runs in the inference thread
            latest.append((share, time.monotonic()))

        async def pump() -> None:
            nonlocal last_sent
            while True:
                await asyncio.sleep(PROGRESS_EVERY)
                if latest and time.monotonic() - last_sent >= PROGRESS_EVERY:
                    last_sent = time.monotonic()
                    share, reached = latest[-1]
                    eta.refine(share, reached)
                    await _progress(job, report, round(share, 3))

        pumping = loop.create_task(pump())
        try:
            return await asyncio.to_thread(
                self.engine.transcribe, media, language, on_progress, watch, options
            )
        finally:
            await tasks.stop(pumping)


async def _progress(job: SubmitEvent, report: Report, share: float) -> None:
    """Publish how far the transcription is (with the job's ETA): best effort, as the result
    is not."""
    try:
        await report(Stage.TRANSCRIBING, share)
    except Exception as exc:
        log.warning("progress not published: %s", exc, extra={"request_id": job.request_id})


async def _unless_cancelled(work: Awaitable[T], watching: asyncio.Task[None]) -> T:
    """`work`'s result, or JobError("cancelled") as soon as the watch sees a delete, even
    while the download's server sends nothing (between chunks the download checks the flag
    itself) or while the job waits for its batch."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, watching}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, JobError):
        await task
    raise JobError(CANCELLED_MESSAGE, CANCELLED_TYPE)
