"""The transcriber's worker with both lanes (`Worker` on the consume loop wrapped by
`stt_common.consume.lanes.Laned`), over a fake consumer and producer: interactive jobs run before
a batch backlog, the batch topic is a submit topic (not a retry topic), and each lane's lag is
exported. The same through the real stack: tests/e2e/test_lanes.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.structs import TopicPartition

from stt_common import bus, metrics
from stt_common.messages import Lane, Source, SubmitEvent
from stt_common.settings import KafkaSettings
from tests.transcriber.test_worker_loop import Loop

# The batch topic sorts first: a fetch with both lanes free would hand out batch work first.
SETTINGS = KafkaSettings(topic_submit="z.jobs.submit", topic_submit_batch="a.jobs.batch")


def laned_loop(tmp_path: Path) -> Loop:
    return Loop(tmp_path, SETTINGS)


def put(loop: Loop, tp: TopicPartition, request_id: str, **fields: object) -> None:
    event = SubmitEvent(
        request_id=request_id, media_url="https://media.example/a.mp3", source=Source.API,
        **fields,  # type: ignore[arg-type]
    )  # fmt: skip
    loop.consumer.append(tp, bus.encode(event))


async def test_interactive_jobs_run_before_the_batch_backlog(tmp_path: Path) -> None:
    loop = laned_loop(tmp_path)
    batch = TopicPartition(SETTINGS.lane_topic(Lane.BATCH), 0)
    interactive = TopicPartition(SETTINGS.topic_submit, 0)
    for i in range(4):
        put(loop, batch, f"b-{i}", priority=Lane.BATCH)
    for i in range(2):
        put(loop, interactive, f"i-{i}")
    await loop.run()
    assert loop.ran == ["i-0", "i-1", "b-0", "b-1", "b-2", "b-3"]
    assert loop.consumer.committed == {interactive: 2, batch: 4}
    assert metrics.LANE_SECONDS.labels(Lane.BATCH)._value.get() > 0
    assert metrics.LANE_LAG.labels(Lane.BATCH)._value.get() == 0  # drained


async def test_not_before_on_the_batch_topic_is_refused_as_on_the_submit_topic(
    tmp_path: Path,
) -> None:
    loop = laned_loop(tmp_path)
    batch = TopicPartition(SETTINGS.lane_topic(Lane.BATCH), 0)
    due = datetime.now(UTC) + timedelta(hours=1)
    event = SubmitEvent(
        request_id="b-late", media_url="https://media.example/a.mp3", source=Source.API
    ).model_copy(update={"not_before": due})
    loop.consumer.append(batch, bus.encode(event))
    await asyncio.wait_for(loop.run(), 10)
    assert loop.ran == []
    [dead] = loop.producer.on(SETTINGS.topic_dlq)
    assert dead.value == bus.encode(event)
    assert loop.consumer.committed == {batch: 1}
