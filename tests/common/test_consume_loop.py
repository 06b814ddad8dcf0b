"""The shared consume loop (`stt_common.consume`) over a fake consumer: its two hooks (a
cross-partition batch handler, priority between topics), its commit and error policies, the
fence, and dead letters that never fail for their size. The services on this loop against the
real broker: tests/projector, tests/webhooks, tests/faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.errors import CommitFailedError, KafkaConnectionError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from stt_common import bus, dead_letters
from stt_common.consume import CommitPolicy, ConsumeLoop, ErrorPolicy, Ready
from stt_testing.fakes import FakeConsumer, FakeProducer

A0, A1 = TopicPartition("jobs", 0), TopicPartition("jobs", 1)
HIGH, LOW = TopicPartition("high", 0), TopicPartition("low", 0)


class Recorder:
    """A handler that records what it was handed and marks done what `finish` accepts."""

    def __init__(self, finish: Callable[[bus.Record], bool] = lambda r: True) -> None:
        self.calls: list[dict[TopicPartition, list[int]]] = []
        self.finish = finish

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        self.calls.append({tp: [r.offset for r in records] for tp, records in ready.items()})
        await loop.done(*(r for records in ready.values() for r in records if self.finish(r)))


def make(
    handler: object,
    commit: CommitPolicy = CommitPolicy.BEFORE_FETCH,
    max_records: int = 500,
    dead: list[tuple[bus.Record, str]] | None = None,
    by_partition: bool = True,
) -> tuple[ConsumeLoop, FakeConsumer]:
    stop = asyncio.Event()
    consumer = FakeConsumer(stop)

    async def dead_letter(record: bus.Record, reason: str) -> None:
        if dead is not None:
            dead.append((record, reason))

    loop = ConsumeLoop(
        consumer,
        handler,  # type: ignore[arg-type]
        commit=commit,
        stop=stop,
        dead_letter=dead_letter,
        errors=ErrorPolicy(backoff_first=0.001, backoff_max=0.001),
        max_records=max_records,
        fetch_timeout_ms=10,
        by_partition=by_partition,
    )
    loop.subscribe(["jobs", "high", "low"])
    return loop, consumer


async def run(loop: ConsumeLoop) -> None:
    await asyncio.wait_for(loop.run(), 10)


async def test_hook_a_a_batch_spans_partitions_and_commits_each_up_to_its_last_terminal() -> None:
    # A cross-job batch: records of two partitions in one call; only "terminal" jobs are done.
    values = {A0: [b"done", b"done", b"running", b"done"], A1: [b"done", b"running"]}
    handler = Recorder(finish=lambda r: r.value == b"done")
    loop, consumer = make(handler, by_partition=False)
    for tp, vals in values.items():
        for v in vals:
            consumer.append(tp, v)
    await run(loop)
    assert handler.calls[0] == {A0: [0, 1, 2, 3], A1: [0, 1]}
    # A0 stops before its running job at offset 2 (offset 3 is done but after it); A1 at 1.
    assert consumer.committed == {A0: 2, A1: 1}


async def test_hook_b_a_low_priority_topic_waits_while_a_high_one_has_work() -> None:
    class Lanes(Recorder):
        def before_fetch(self, loop: ConsumeLoop) -> None:
            consumer = loop.consumer
            high_waiting = consumer.positions.get(HIGH, 0) < consumer.highwater(HIGH)
            if high_waiting:
                loop.gate.hold(LOW, "lane")
            else:
                loop.gate.release(LOW, "lane")

    handler = Lanes()
    loop, consumer = make(handler, max_records=1)
    for i in range(3):
        consumer.append(HIGH, b"h%d" % i)
        consumer.append(LOW, b"l%d" % i)
    loop.gate.hold(LOW, "unrelated", until=None)  # another reason on the same partition...
    loop.gate.release(LOW, "unrelated")  # ...released; the lane reason is kept apart from it
    await run(loop)
    order = [tp.topic for call in handler.calls for tp in call]
    assert order == ["high"] * 3 + ["low"] * 3
    assert consumer.committed == {HIGH: 3, LOW: 3}


async def test_on_done_commits_at_once_and_a_transient_error_rewinds_and_retries() -> None:
    failures = [KafkaConnectionError("broker away")]

    class Flaky(Recorder):
        async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
            if failures:
                raise failures.pop()
            await super().handle(ready, loop)

    handler = Flaky()
    loop, consumer = make(handler, commit=CommitPolicy.ON_DONE)
    consumer.append(A0, b"x")
    consumer.append(A0, b"y")
    await run(loop)
    assert handler.calls == [{A0: [0, 1]}]  # the failed round handed nothing over; re-read
    assert consumer.committed == {A0: 2}


async def test_a_record_that_keeps_failing_is_isolated_dead_lettered_and_passed() -> None:
    dead: list[tuple[bus.Record, str]] = []

    class Buggy(Recorder):
        async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
            self.calls.append({tp: [r.offset for r in rs] for tp, rs in ready.items()})
            for records in ready.values():
                if any(r.value == b"poison" for r in records):
                    raise RuntimeError("a bug")
                await loop.done(*records)

    handler = Buggy()
    loop, consumer = make(handler, commit=CommitPolicy.ON_DONE, dead=dead)
    for v in (b"ok", b"poison", b"ok"):
        consumer.append(A0, v)
    await run(loop)
    assert [r.value for r, _ in dead] == [b"poison"]
    assert "RuntimeError" in dead[0][1]
    assert consumer.committed == {A0: 3}  # nothing stopped the partition
    assert {A0: [0]} in handler.calls and {A0: [2]} in handler.calls  # the good ones ran


async def test_a_commit_refused_by_a_rebalance_is_dropped_not_retried() -> None:
    handler = Recorder()
    loop, consumer = make(handler, commit=CommitPolicy.ON_DONE)
    consumer.refuse_commits = CommitFailedError("group rebalanced")
    consumer.append(A0, b"x")
    await run(loop)
    assert handler.calls == [{A0: [0]}]
    assert loop.unsent == {}


async def test_a_failed_commit_is_sent_again() -> None:
    handler = Recorder()
    loop, consumer = make(handler)
    consumer.refuse_commits = KafkaConnectionError("broker away")
    consumer.append(A0, b"x")
    await run(loop)  # stops with the commit unsent (refused at the final flush too)
    assert loop.unsent == {A0: 1}
    consumer.refuse_commits = None
    await loop.flush()
    assert consumer.committed == {A0: 1}


async def test_the_fence_falls_once_the_partition_was_revoked_even_if_it_came_back() -> None:
    loop, consumer = make(Recorder())
    consumer.append(A0, b"x")
    lease = loop.lease(A0)
    assert loop.owns(A0, lease)
    await consumer.revoke(A0)
    assert not loop.owns(A0, lease)
    await consumer.assign_back(A0)
    assert loop.owns(A0) and not loop.owns(A0, lease)  # held again, but not without a break


@pytest.mark.parametrize("extra", [0, 64, 5000])
async def test_a_dead_letter_never_fails_for_its_size(extra: int) -> None:
    """A poison event just under Kafka's limit, plus the dead-letter headers: cut to fit."""
    producer = FakeProducer()
    room = producer.max_request_size - DefaultRecordBatchBuilder.estimate_size_in_bytes(
        b"k" * 40, b"", []
    )
    value = b"{" + b"a" * (room - 1 - extra)  # alone it fits the producer; with headers not
    record = consumer_record(value, key=b"k" * 40)
    await dead_letters.send(
        producer, "dlq", record, group="g", attempt=1, error_type="poison_event", message="x"
    )
    [sent] = producer.on("dlq")
    marks = dict(sent.headers or [])
    assert marks[dead_letters.TRUNCATED] == f"value={len(value)} key=40".encode()
    assert sent.value is not None and value.startswith(sent.value) and len(sent.value) > 900_000


async def test_a_small_dead_letter_is_copied_unchanged() -> None:
    producer = FakeProducer()
    record = consumer_record(b"{not json", key=b"r-1")
    await dead_letters.send(
        producer, "dlq", record, group="g", attempt=1, error_type="poison_event", message="x"
    )
    [sent] = producer.on("dlq")
    assert sent.value == b"{not json" and sent.key == b"r-1"
    assert dead_letters.TRUNCATED not in dict(sent.headers or [])


def consumer_record(value: bytes, key: bytes | None = None) -> bus.Record:
    from stt_testing.fakes import consumer_record as make_record

    return make_record(A0, 0, value, key)


async def test_long_work_keeps_polling_with_every_partition_paused_through_a_fetch_error() -> None:
    class Slow(Recorder):
        async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
            async def work() -> None:
                runs.append(1)
                await asyncio.sleep(0.05)
                assert A0 in consumer.paused and A1 in consumer.paused  # nothing else is read

            consumer.fail_next_fetch = KafkaConnectionError("broker away")
            await loop.while_polling(work(), every=0.01, grace=1)
            await super().handle(ready, loop)

    runs: list[int] = []
    handler = Slow()
    loop, consumer = make(handler, commit=CommitPolicy.ON_DONE, max_records=1)
    real_getmany = consumer.getmany
    consumer.fail_next_fetch = None  # type: ignore[attr-defined]

    async def getmany(timeout_ms: int = 0, max_records: int | None = None) -> object:
        failure, consumer.fail_next_fetch = consumer.fail_next_fetch, None
        if failure is not None:
            raise failure
        return await real_getmany(timeout_ms, max_records)

    consumer.getmany = getmany  # type: ignore[method-assign,assignment]
    consumer.append(A0, b"x")
    consumer.append(A1, b"y")
    await run(loop)
    assert handler.calls == [{A0: [0]}, {A1: [0]}]
    assert len(runs) == 2  # the failed keep-alive poll did not abandon and redo the work
    assert consumer.committed == {A0: 1, A1: 1}


async def test_a_failing_partition_is_charged_alone_its_neighbour_goes_on() -> None:
    dead: list[tuple[bus.Record, str]] = []

    class Buggy(Recorder):
        async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
            for records in ready.values():
                if any(r.value == b"poison" for r in records):
                    raise RuntimeError("a bug")
            await super().handle(ready, loop)

    handler = Buggy()
    loop, consumer = make(handler, commit=CommitPolicy.ON_DONE, dead=dead)
    consumer.append(A0, b"poison")
    consumer.append(A1, b"fine")
    await run(loop)
    assert [r.value for r, _ in dead] == [b"poison"]  # not the neighbour fetched with it
    assert handler.calls[0] == {A1: [0]}
    assert consumer.committed == {A0: 1, A1: 1}
