"""Cross-job batches in the transcriber (`batch_scheduler`, `batcher`), in this process: the real
worker, consume loop, job runner and batcher over a fake consumer and producer, the job store
and claims on fakeredis, and the fake engines (`FakeEngine`, `FakeManyEngine`); the media
"download" copies local WAV files.

The scheduling rules proven here: a lone job starts at once; jobs ready together share a batch;
a batch waits (boundedly) for jobs still downloading, and work arriving while the model is busy
forms the next one; a broken file fails alone; a partition is committed only up to its first
job not finished; a job cancelled while it waits for its batch fails alone; a stop mid-batch
hands the jobs back uncommitted; an outcome not published is retried in place. The same worker
with the real model and real speech: tests/e2e/test_cross_job_batch.py; killed mid-batch:
tests/faults/test_batch_crash.py."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import numpy as np
import pytest
from aiokafka.structs import TopicPartition

from stt_common import bus
from stt_common.job_store import JobStore
from stt_common.messages import ErrorType, JobStatus, ResultEvent, Source, SubmitEvent
from stt_common.settings import FetchSettings, KafkaSettings, MinioSettings
from stt_testing.fakes import FakeConsumer, FakeProducer
from stt_testing.sounds import write_wav
from stt_transcriber import job_runner
from stt_transcriber.batcher import Batcher, BatchLimits
from stt_transcriber.fake_engine import FakeEngine, FakeManyEngine
from stt_transcriber.job_runner import JobRunner
from stt_transcriber.worker import Worker

SAMPLE_RATE = 16_000


class DrainingConsumer(FakeConsumer):
    """Stops the loop once every record is read and committed (not merely read: jobs finish
    after the fetch that brought them), and records each commit with the jobs published so far."""

    def __init__(self, stop: asyncio.Event, published: Callable[[], list[str]]) -> None:
        super().__init__(stop)
        self.published = published
        self.commits: list[tuple[dict[TopicPartition, int], list[str]]] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        self.fetches += 1
        ready = await FakeConsumer.getmany(self, 0, max_records)
        if not ready and timeout_ms:
            drained = all(
                self.positions[tp] == len(log) and self.committed.get(tp) == len(log)
                for tp, log in self.logs.items()
            )
            if drained:
                self.stop.set()
            await asyncio.sleep(0.01)  # a real poll waits; do not spin
        return ready

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await super().commit(offsets)
        self.commits.append((dict(offsets), self.published()))


class Batches:
    def __init__(
        self, tmp_path: Path, size: int, wait: float, delay: float, beside: bool = True
    ) -> None:
        self.settings = KafkaSettings()
        self.stop = asyncio.Event()
        self.producer = FakeProducer()
        self.consumer = DrainingConsumer(self.stop, self.published)
        self.redis = fakeredis.FakeAsyncRedis()
        self.store = JobStore(self.redis, 3600)
        self.engine = FakeEngine(delay=delay)
        self.many = FakeManyEngine(self.engine)
        limits = BatchLimits(size, wait, 120.0, prepare_beside_model=beside)
        self.batcher = Batcher(self.engine, self.many, limits)
        self.cancelled: set[str] = set()
        self.runner = JobRunner(
            self.engine,
            FetchSettings(),
            MinioSettings(),
            tmp_path / "work",
            "w-batch",
            self._cancelled,
            self.batcher,
        )
        self.media = tmp_path / "media"
        self.media.mkdir()
        self.download_seconds: dict[str, float] = {}
        self.downloaded: dict[Path, str] = {}  # where each job's media went: its request id
        self.submit = TopicPartition(self.settings.topic_submit, 0)
        self.grace = 10.0

    async def _cancelled(self, job: SubmitEvent) -> bool:
        return job.request_id in self.cancelled

    async def fetch(self, url: str, dest: Path, *_: object) -> Path:
        name = url.rsplit("/", 1)[1]
        await asyncio.sleep(self.download_seconds.get(name, 0.0))
        shutil.copy(self.media / name, dest)
        self.downloaded[dest] = name.removesuffix(".wav")
        return dest

    def put(self, rid: str, seconds: float = 2.0, partition: int = 0, **fields: Any) -> int:
        write_wav(np.zeros(int(seconds * SAMPLE_RATE), np.float32), self.media / f"{rid}.wav")
        event = SubmitEvent(
            request_id=rid,
            media_url=f"https://media.example/{rid}.wav",
            source=Source.API,
            language="en",
            **fields,
        )
        tp = TopicPartition(self.settings.topic_submit, partition)
        return self.consumer.append(tp, bus.encode(event)).offset

    def worker(self) -> Worker:
        return Worker(
            self.settings,
            self.runner,
            self.store,
            self.consumer,  # type: ignore[arg-type]
            self.producer,  # type: ignore[arg-type]
            self.stop,
            shutdown_grace=self.grace,
            batch=self.batcher.limits.size,
        )

    async def run(self, timeout: float = 20) -> Worker:
        worker = self.worker()
        worker.subscribe()
        await asyncio.wait_for(worker.run(), timeout)
        return worker

    def results(self) -> list[ResultEvent]:
        sent = self.producer.on(self.settings.topic_results)
        return [bus.decode(ResultEvent, s.value or b"") for s in sent]

    def final(self) -> dict[str, ResultEvent]:
        return {r.request_id: r for r in self.results() if r.status is not JobStatus.PROCESSING}

    def published(self) -> list[str]:
        return list(self.final())

    def batched(self) -> list[list[str]]:
        return [[self.downloaded[path] for path in batch] for batch in self.many.batches]


@pytest.fixture
def batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Batches]:
    def make(size: int = 4, wait: float = 0.0, delay: float = 0.0, beside: bool = True) -> Batches:
        made = Batches(tmp_path, size, wait, delay, beside)
        monkeypatch.setattr(job_runner, "fetch_media", made.fetch)
        return made

    monkeypatch.setattr(job_runner, "CANCEL_CHECK_EVERY", 0.05)
    return make


def completed(b: Batches) -> set[str]:
    return {rid for rid, r in b.final().items() if r.status is JobStatus.COMPLETED}


async def test_a_lone_job_starts_at_once(batches: Callable[..., Batches]) -> None:
    b = batches(size=4, wait=60.0)  # waiting for a batch to fill would time the test out
    b.put("lone")
    await b.run(timeout=10)
    assert b.batched() == [["lone"]]
    assert completed(b) == {"lone"}
    assert b.consumer.committed == {b.submit: 1}


async def test_jobs_ready_together_share_one_batch(batches: Callable[..., Batches]) -> None:
    b = batches(size=4, wait=5.0)  # all four are on their way: the batch waits for them
    rids = [f"together-{i}" for i in range(4)]
    for i, rid in enumerate(rids):
        b.put(rid, partition=i % 2)  # across partitions: the loop hands them over together
    await b.run()
    assert [sorted(batch) for batch in b.batched()] == [sorted(rids)]
    assert completed(b) == set(rids)
    assert {r.transcription for r in b.final().values()} == {"fake transcript of media"}
    tps = [TopicPartition(b.settings.topic_submit, p) for p in (0, 1)]
    assert b.consumer.committed == {tp: 2 for tp in tps}


@pytest.mark.parametrize(
    ("wait", "expected"), [(5.0, [["fast", "slow"]]), (0.0, [["fast"], ["slow"]])]
)
async def test_a_batch_waits_for_jobs_still_downloading_up_to_the_wait(
    batches: Callable[..., Batches], wait: float, expected: list[list[str]]
) -> None:
    b = batches(size=4, wait=wait)
    b.put("fast")
    b.put("slow")
    b.download_seconds["slow.wav"] = 0.5
    await b.run()
    assert b.batched() == expected
    assert completed(b) == {"fast", "slow"}


async def test_jobs_arriving_while_the_model_is_busy_form_the_next_batch(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, delay=1.0)
    b.put("first")

    async def more_while_busy() -> None:
        while not b.many.batches:
            await asyncio.sleep(0.01)
        for i in range(3):
            b.put(f"next-{i}")

    adding = asyncio.create_task(more_while_busy())
    await b.run()
    await adding
    assert [sorted(batch) for batch in b.batched()] == [["first"], ["next-0", "next-1", "next-2"]]
    assert b.consumer.committed == {b.submit: 4}


async def test_a_batch_holds_at_most_size_clips(batches: Callable[..., Batches]) -> None:
    b = batches(size=4, wait=5.0)  # memory goes with the 30 s clips of a call, not the jobs
    b.put("three-clips", seconds=70.0)
    b.put("one-clip", seconds=20.0)
    b.put("two-clips", seconds=50.0)
    await b.run()
    assert [sorted(batch) for batch in b.batched()] in (
        [["one-clip", "three-clips"], ["two-clips"]],
        [["one-clip", "two-clips"], ["three-clips"]],  # in the order they were prepared
        [["three-clips"], ["one-clip", "two-clips"]],
        [["two-clips"], ["one-clip", "three-clips"]],
    )
    assert completed(b) == {"three-clips", "one-clip", "two-clips"}


async def test_a_broken_file_fails_alone_and_the_batch_completes(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, wait=5.0)
    b.many.fail_if = lambda path: b.downloaded[path] == "broken"
    for rid in ("good-1", "broken", "good-2"):
        b.put(rid)
    await b.run()
    assert [sorted(batch) for batch in b.batched()] == [["good-1", "good-2"]]
    final = b.final()
    assert completed(b) == {"good-1", "good-2"}
    assert (final["broken"].status, final["broken"].error_type) == (
        JobStatus.FAILED,
        ErrorType.INVALID_MEDIA,
    )
    [dead] = b.producer.on(b.settings.topic_dlq)  # a FAILED job is dead-lettered, alone
    assert dead.value is not None and b"broken" in dead.value
    assert b.consumer.committed == {b.submit: 3}


async def test_a_partition_is_committed_only_up_to_its_first_job_not_finished(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, wait=0.3)  # the quick ones do not wait for the slow one
    b.put("slow-head")  # offset 0: still downloading when the two after it are done
    b.put("quick-1")
    b.put("quick-2")
    b.download_seconds["slow-head.wav"] = 1.0
    await b.run()
    assert [sorted(batch) for batch in b.batched()] == [["quick-1", "quick-2"], ["slow-head"]]
    assert b.published()[-1] == "slow-head"
    for offsets, published in b.consumer.commits:
        if offsets.get(b.submit, 0) > 0:  # past offset 0 only once its job's result is out
            assert "slow-head" in published, b.consumer.commits
    assert b.consumer.committed == {b.submit: 3}


async def test_a_job_cancelled_while_it_waits_for_its_batch_fails_alone(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=2, delay=1.5)
    b.put("running")
    b.put("waiting")  # arrives once the model is busy with the first: waits for the next batch
    b.download_seconds["waiting.wav"] = 0.3

    async def cancel_the_waiting_one() -> None:
        while not b.batcher._queue:
            await asyncio.sleep(0.01)
        b.cancelled.add("waiting")

    cancelling = asyncio.create_task(cancel_the_waiting_one())
    await b.run()
    await cancelling
    assert b.batched() == [["running"]]  # the cancelled job never reached the model
    final = b.final()
    assert final["running"].status is JobStatus.COMPLETED
    assert (final["waiting"].status, final["waiting"].error_type) == (
        JobStatus.FAILED,
        ErrorType.CANCELLED,
    )
    assert b.published() == ["waiting", "running"]  # failed while the batch still ran
    assert b.consumer.committed == {b.submit: 2}


async def test_a_stop_mid_batch_past_the_grace_hands_the_jobs_back(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, delay=3.0)
    b.grace = 0.2
    for rid in ("back-1", "back-2"):
        b.put(rid)

    async def stop_mid_batch() -> None:
        while not b.many.batches:
            await asyncio.sleep(0.01)
        b.stop.set()

    stopping = asyncio.create_task(stop_mid_batch())
    await b.run()
    await stopping
    assert b.final() == {}  # nothing half-finished went out
    assert b.consumer.committed.get(b.submit, 0) == 0  # read again by the next owner
    assert await b.redis.keys("stt:claim:*") == []  # claims released: no lease to wait out


async def test_an_outcome_not_published_is_run_again_in_place(
    batches: Callable[..., Batches], monkeypatch: pytest.MonkeyPatch
) -> None:
    b = batches(size=4)
    b.producer.fail_topics.add(b.settings.topic_results)
    b.put("unlucky")
    b.put("after")  # same partition, later offset: may finish first, never committed past

    async def heal() -> None:
        while len(b.many.batches) < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        b.producer.fail_topics.clear()

    healing = asyncio.create_task(heal())
    await b.run()
    await healing
    assert completed(b) == {"unlucky", "after"}
    assert len([r for r in b.results() if r.status is JobStatus.COMPLETED]) == 2  # once each
    assert sum(batch.count("unlucky") for batch in b.batched()) >= 2  # ran again
    assert b.consumer.committed == {b.submit: 2}


async def test_a_partition_revoked_mid_batch_publishes_nothing_and_its_jobs_run_again(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, wait=5.0, delay=2.0)
    for rid in ("moved-1", "moved-2"):
        b.put(rid)

    async def rebalance_mid_batch() -> None:
        while not b.many.batches:
            await asyncio.sleep(0.01)
        await b.consumer.revoke(b.submit)  # another member owns it now, for a while
        await asyncio.sleep(2.5)  # the batch ends meanwhile: its results must not go out
        b.consumer.seek(b.submit, b.consumer.committed.get(b.submit, 0))  # as Kafka resets
        await b.consumer.assign_back(b.submit)

    moving = asyncio.create_task(rebalance_mid_batch())
    await b.run(timeout=30)
    await moving
    assert len(b.batched()) == 2  # the fenced run, then the run after the partition came back
    completions = [r.request_id for r in b.results() if r.status is JobStatus.COMPLETED]
    assert sorted(completions) == ["moved-1", "moved-2"]  # once each: the fenced run sent none
    assert b.consumer.committed == {b.submit: 2}


async def test_on_a_cpu_jobs_are_prepared_in_the_models_turn_and_still_share_a_batch(
    batches: Callable[..., Batches],
) -> None:
    b = batches(size=4, wait=5.0, beside=False)  # STT_DEVICE=cpu: no thread beside the model
    b.put("alone")
    await b.run()
    assert b.batched() == [["alone"]]  # a lone job still starts at once
    rids = [f"cpu-{i}" for i in range(4)]
    b.stop.clear()
    for rid in rids:
        b.put(rid)
    await b.run()
    assert [sorted(batch) for batch in b.batched()[1:]] == [rids]
    assert b.consumer.committed == {b.submit: 5}
