"""The model's side of cross-job batching: several jobs' prepared audio through one batched call.

Jobs come here from their own tasks (`JobRunner.run`, one per job the batch scheduler holds).
A job that can join a batch (`takes`: no word timestamps, not longer than `max_seconds`) is
decoded and cut into clips while the model is busy with others (`BatchEngine.prepare`, in a
thread, one at a time), then waits in the queue; the model loop takes up to `size` waiting jobs
into one `BatchEngine.run` call, as long as their clips number at most `size` (memory is per clip:
each is one 30 s encoder input; a job with more clips goes alone). Other jobs (long files: the
windowed path) take their turn on the model (`turn`) between batches.

Invariants:
* one model call at a time, batched or not: on a CPU two calls only fight for the cores;
* a batch starts as soon as the model is free and a job waits, except that while other jobs
  the scheduler admitted are still on their way (`expect`ed: downloading, preparing) it waits
  for them, at most `wait` seconds or until `size` clips wait. A lone job never waits;
* each job's outcome is its own: an exception of one job fails that job only; a failure of the
  batched call itself (`BatchFailed`) sends each of its jobs through the sequential engine alone;
* a job whose waiter has gone (cancelled by its client, fenced, handed back) leaves the queue,
  or its outcome is dropped: nothing else depends on it;
* each job hears when its batch goes on the model (`BatchStart`), before the model runs: its
  ETA starts there, not while it waits behind another batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from stt_common import metrics, tasks
from stt_transcriber import heap
from stt_transcriber.batch_clips import BatchItem, Prepared
from stt_transcriber.batch_engine import BatchFailed, ItemResult, eligible
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import Engine, Transcript

log = logging.getLogger(__name__)


class ManyEngine(Protocol):
    """What the batcher needs of `batch_engine.BatchEngine` (and of the fake one)."""

    def prepare(self, item: BatchItem) -> Prepared:
        """Decode and cut one job; raises JobError."""
        ...

    def run(self, jobs: Sequence[Prepared]) -> list[ItemResult]:
        """Each job's transcript or exception, in order; raises BatchFailed."""
        ...


@dataclass(frozen=True)
class BatchLimits:
    size: int  # most <= 30 s clips in one model call (STT_CROSS_JOB_BATCH); at least one job
    wait: float  # seconds a batch may wait for jobs on their way (STT_BATCH_WAIT_MS)
    max_seconds: float  # longer files take the windowed path (STT_BATCH_MAX_SECONDS)
    # Decode and cut jobs while the model runs (a GPU). On a CPU the model's threads already
    # take every core, and a thread beside them only slows both: preparing takes the model's
    # turn instead (downloads still overlap).
    prepare_beside_model: bool = False


@dataclass(frozen=True)
class BatchStart:
    """What a job is told as its batch goes on the model: enough to predict when the batch
    ends and, once it has, to learn this job's share of the model's time."""

    durations: tuple[float, ...]  # audio seconds of each job in the batch, this one included
    clips: int  # clips in the batch: its share of the model's time goes by clips
    own_clips: int

    @property
    def share(self) -> float:
        return self.own_clips / self.clips


OnStart = Callable[[BatchStart], None]


@dataclass
class _Waiting:
    job_id: str
    prepared: Prepared
    future: asyncio.Future[Transcript]
    on_start: OnStart | None = None


class Batcher:
    def __init__(self, engine: Engine, many: ManyEngine, limits: BatchLimits) -> None:
        self.engine = engine  # the sequential engine: long files, and a failed batched call
        self.many = many
        self.limits = limits
        self.model = asyncio.Lock()  # one model call at a time
        self._preparing = asyncio.Semaphore(1)  # CPU work beside the model: one job at a time
        self._coming: set[str] = set()  # job ids admitted that have not reached the queue
        self._queue: list[_Waiting] = []
        self._changed = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self.sizes: list[int] = []  # jobs per batch run so far (tests, logs)

    def takes(self, options: DecodeOptions, duration: float) -> bool:
        return eligible(options) and duration <= self.limits.max_seconds

    def expect(self, job_id: str) -> None:
        """The scheduler admitted this job: a batch may wait for it (see module)."""
        self._coming.add(job_id)

    def forget(self, job_id: str) -> None:
        """The job reached the queue, took another path, or ended: no batch waits for it."""
        if job_id in self._coming:
            self._coming.discard(job_id)
            self._changed.set()

    @contextlib.asynccontextmanager
    async def turn(self, job_id: str) -> AsyncIterator[None]:
        """The model to one job alone (the sequential engine), between batches."""
        self.forget(job_id)
        async with self.model:
            yield

    async def transcribe(
        self, job_id: str, item: BatchItem, on_start: OnStart | None = None
    ) -> Transcript:
        """`item`'s transcript from a batch; raises the job's own exception (JobError).
        `on_start` is called (in the event loop) as the job's batch goes on the model."""
        try:
            turn = self._preparing if self.limits.prepare_beside_model else self.model
            async with turn:
                prepared = await asyncio.to_thread(self.many.prepare, item)
        finally:
            self.forget(job_id)
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(job_id, prepared, future, on_start))
        self._changed.set()
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve())
        return await future  # cancelled with its waiter: then it leaves the queue

    async def close(self) -> None:
        if self._serving is not None:
            await tasks.stop(self._serving)

    async def _serve(self) -> None:
        while True:
            batch = await self._next_batch()
            async with self.model:
                batch = [w for w in batch if not w.future.done()]  # gone while it waited
                if not batch:
                    continue
                started = time.monotonic()
                ids = " ".join(w.job_id for w in batch)
                log.info("batch of %d jobs started: %s", len(batch), ids)
                _announce(batch)
                try:
                    outcomes = await asyncio.to_thread(self._run, [w.prepared for w in batch])
                except Exception as exc:  # a bug: fails these jobs, not the jobs to come
                    log.exception("batch failed")
                    outcomes = [exc] * len(batch)
            seconds = time.monotonic() - started
            self.sizes.append(len(batch))
            metrics.BATCH_JOBS.observe(len(batch))
            log.info("batch of %d jobs done in %.2fs", len(batch), seconds)
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(outcome, Transcript):
                    waiting.future.set_result(outcome)
                elif isinstance(outcome, Exception):
                    waiting.future.set_exception(outcome)
                else:
                    waiting.future.set_exception(RuntimeError(repr(outcome)))

    def _live(self) -> list[_Waiting]:
        self._queue = [w for w in self._queue if not w.future.done()]
        return self._queue

    async def _next_batch(self) -> list[_Waiting]:
        """The first waiting jobs whose clips number at most `size` (at least one job), once
        the batch rule of the module says go."""
        while not self._live():
            await self._until_changed(None)
        deadline = time.monotonic() + self.limits.wait
        while sum(map(_clips, self._live())) < self.limits.size and self._coming:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self._until_changed(left)
        taken, clips = 0, 0
        for waiting in self._queue:
            if taken and clips + _clips(waiting) > self.limits.size:
                break
            taken, clips = taken + 1, clips + _clips(waiting)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _until_changed(self, within: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    def _run(self, jobs: list[Prepared]) -> list[ItemResult]:
        """In the model thread: one batched call, or each job alone if that call fails."""
        try:
            return self.many.run(jobs)
        except BatchFailed as exc:
            log.warning("batched call failed (%s); running its %d jobs alone", exc, len(jobs))
            return [self._alone(p.item) for p in jobs]
        finally:
            heap.release()  # the batch's features are gone: give their pages back

    def _alone(self, item: BatchItem) -> ItemResult:
        try:
            return self.engine.transcribe(
                item.path, item.language, None, item.should_stop, item.options
            )
        except Exception as exc:  # the job's own failure
            return exc


def _announce(batch: list[_Waiting]) -> None:
    """Tell each job of `batch` that it is on the model now (best effort: a listener's error
    is logged, the batch runs)."""
    clips = sum(map(_clips, batch))
    durations = tuple(w.prepared.duration for w in batch)
    for waiting in batch:
        if waiting.on_start is None:
            continue
        try:
            waiting.on_start(BatchStart(durations, clips, _clips(waiting)))
        except Exception:
            log.exception("batch start not announced to %s", waiting.job_id)


def _clips(waiting: _Waiting) -> int:
    """What a job weighs in a batch: its clips (one for a job with none, which costs little)."""
    return max(1, len(waiting.prepared.clips))
