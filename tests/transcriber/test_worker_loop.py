"""The transcriber's consume loop (`stt_transcriber.worker.Worker.run`) in this process, over a
fake consumer and producer (tests/harness/fakes.py) and the job store on fakeredis.

What is proven here: an offset is committed only once the job's outcome is out, a failed publish
rewinds instead, poison goes to the dead letters, transient failures to the retry topic, a
job already final is skipped, and a not-yet-due retry parks its partition. The same loop against
the real broker, killed and restarted: tests/faults/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
from aiokafka.structs import TopicPartition

from stt_common import bus
from stt_common.job_store import JobStore
from stt_common.messages import RETRY_TOPIC, JobRecord, JobStatus, ResultEvent, Source, SubmitEvent
from stt_common.settings import FetchSettings, KafkaSettings, MinioSettings
from stt_testing.fakes import FakeConsumer, FakeProducer
from stt_transcriber.errors import JobError
from stt_transcriber.fake_engine import FakeEngine
from stt_transcriber.job_runner import JobRunner
from stt_transcriber.worker import NOT_DUE, Worker


class Loop:
    def __init__(self, tmp_path: Path, settings: KafkaSettings | None = None) -> None:
        self.settings = settings or KafkaSettings()
        self.stop = asyncio.Event()
        self.consumer = FakeConsumer(self.stop)
        self.producer = FakeProducer()
        self.redis = fakeredis.FakeAsyncRedis()
        self.store = JobStore(self.redis, 3600)
        self.runner = JobRunner(FakeEngine(), FetchSettings(), MinioSettings(), tmp_path, "w-loop")
        self.ran: list[str] = []
        self.outcome: Exception | None = None
        self.runner.run = self._run  # type: ignore[method-assign]
        self.worker = Worker(
            self.settings,
            self.runner,
            self.store,
            self.consumer,  # type: ignore[arg-type]
            self.producer,  # type: ignore[arg-type]
            self.stop,
            shutdown_grace=1.0,
        )
        self.submit = TopicPartition(self.settings.topic_submit, 0)

    async def _run(self, job: SubmitEvent, report: object) -> ResultEvent:
        self.ran.append(job.request_id)
        if self.outcome is not None:
            raise self.outcome
        return self.runner._result(job, JobStatus.COMPLETED, stage="done", transcription="ok")

    def put(self, request_id: str, **fields: object) -> int:
        event = SubmitEvent(
            request_id=request_id,
            media_url="https://media.example/a.mp3",
            source=Source.API,
            **fields,  # type: ignore[arg-type]
        )
        return self.consumer.append(self.submit, bus.encode(event)).offset

    async def run(self) -> None:
        self.worker.subscribe()
        await asyncio.wait_for(self.worker.run(), 10)

    def results(self) -> list[ResultEvent]:
        sent = self.producer.on(self.settings.topic_results)
        return [bus.decode(ResultEvent, s.value or b"") for s in sent]


@pytest.fixture
def loop(tmp_path: Path) -> Loop:
    return Loop(tmp_path)


async def test_each_job_runs_once_and_is_committed_after_its_result(loop: Loop) -> None:
    loop.put("w-1")
    last = loop.put("w-2")
    await loop.run()
    assert loop.ran == ["w-1", "w-2"]
    assert [(r.request_id, r.status) for r in loop.results()] == [
        ("w-1", JobStatus.COMPLETED),
        ("w-2", JobStatus.COMPLETED),
    ]
    assert loop.consumer.committed == {loop.submit: last + 1}


async def test_an_outcome_not_published_is_not_committed_and_runs_again(loop: Loop) -> None:
    loop.producer.fail_topics.add(loop.settings.topic_results)
    loop.put("w-3")

    async def heal() -> None:  # the broker comes back once the result was refused
        while loop.producer.refused < 1:
            await asyncio.sleep(0.01)
        loop.producer.fail_topics.clear()

    healer = asyncio.create_task(heal())
    await loop.run()
    await healer
    assert loop.ran == ["w-3", "w-3"]
    assert [r.request_id for r in loop.results()] == ["w-3"]
    assert loop.consumer.committed == {loop.submit: 1}


async def test_poison_is_dead_lettered_and_committed(loop: Loop) -> None:
    loop.consumer.append(loop.submit, b"{not json")
    await loop.run()
    assert loop.ran == []
    [dead] = loop.producer.on(loop.settings.topic_dlq)
    assert dead.value == b"{not json"
    assert loop.consumer.committed == {loop.submit: 1}


async def test_a_transient_failure_goes_to_the_retry_topic(loop: Loop) -> None:
    loop.outcome = JobError("media server busy", "download", transient=True)
    loop.put("w-4")
    await loop.run()
    retry_topic, _delay = loop.settings.retry_topics()[0]
    [again] = loop.producer.on(retry_topic)
    retried = bus.decode(SubmitEvent, again.value or b"", {RETRY_TOPIC: True})
    assert (retried.request_id, retried.attempt) == ("w-4", 2)
    assert retried.not_before is not None
    [note] = loop.results()
    assert (note.status, note.stage, note.attempt) == (JobStatus.PROCESSING, "retrying", 2)
    assert loop.consumer.committed == {loop.submit: 1}


async def test_a_job_already_final_is_skipped(loop: Loop) -> None:
    done = JobRecord(request_id="w-5", status=JobStatus.COMPLETED, stage="done")
    await loop.store.apply(done, now=done.updated_at.timestamp())
    loop.put("w-5")
    await loop.run()
    assert loop.ran == []
    assert loop.results() == []
    assert loop.consumer.committed == {loop.submit: 1}


async def test_a_retry_not_yet_due_parks_its_partition(loop: Loop) -> None:
    retry = TopicPartition(loop.settings.retry_topics()[0][0], 0)
    due = datetime.now(UTC) + timedelta(hours=1)
    event = SubmitEvent(
        request_id="w-6", media_url="https://media.example/a.mp3", source=Source.API, attempt=2
    ).model_copy(update={"not_before": due})  # as the worker writes it to a retry topic
    loop.consumer.append(retry, bus.encode(event))
    await loop.run()
    assert loop.ran == []
    assert retry in loop.consumer.paused
    assert loop.consumer.positions[retry] == 0  # rewound: read again once due
    assert loop.worker.consume.gate.until(retry, NOT_DUE) == due
    assert retry not in loop.consumer.committed
