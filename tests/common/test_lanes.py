"""Priority lanes (`stt_common.consume.lanes`) on the shared consume loop over a fake consumer:
interactive work first, batch work its minimum share of the time while both wait, and pausing
that never skips or reorders a record within its partition. The transcriber on real Kafka with
lanes: tests/e2e/test_lanes.py.

The batch topic's name sorts before the interactive one's: the fake consumer (like a real fetch
that finds both ready) would hand out batch records first if no lane held them back."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition

from stt_common import bus, metrics
from stt_common.consume import CommitPolicy, ConsumeLoop, ErrorPolicy, Ready
from stt_common.consume.lanes import BATCH_TURN, INTERACTIVE_FIRST, Laned, LanePolicy, Mode
from stt_common.messages import Lane
from stt_testing.fakes import FakeConsumer

BATCH = [TopicPartition("a-batch", p) for p in range(2)]
INTERACTIVE = [TopicPartition("b-interactive", p) for p in range(2)]
RETRY = TopicPartition("c-retry", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Jobs:
    """A handler whose every record takes one second of the fake clock; `arrivals` are appended
    to the consumer after the given number of handled records (work arriving meanwhile)."""

    def __init__(self, consumer: FakeConsumer, clock: Clock) -> None:
        self.consumer = consumer
        self.clock = clock
        self.handled: list[bus.Record] = []
        self.arrivals: dict[int, list[TopicPartition]] = {}

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        for records in ready.values():
            for record in records:
                self.clock.now += 1.0
                self.handled.append(record)
                for tp in self.arrivals.pop(len(self.handled), []):
                    self.consumer.append(tp, b"late")
                await loop.done(record)

    def topics(self) -> list[str]:
        return [r.topic for r in self.handled]


def make(min_share: float) -> tuple[ConsumeLoop, FakeConsumer, Jobs, LanePolicy]:
    stop = asyncio.Event()
    consumer = FakeConsumer(stop)
    clock = Clock()
    jobs = Jobs(consumer, clock)
    policy = LanePolicy({Lane.INTERACTIVE: ["b-interactive"], Lane.BATCH: ["a-batch"]}, min_share)

    async def dead_letter(record: bus.Record, reason: str) -> None:
        raise AssertionError("nothing is dead-lettered here")

    loop = ConsumeLoop(
        consumer,
        Laned(jobs, policy, clock=clock),
        commit=CommitPolicy.ON_DONE,
        stop=stop,
        dead_letter=dead_letter,
        errors=ErrorPolicy(backoff_first=0.001, backoff_max=0.001),
        max_records=1,  # the transcriber's way: one job per fetch
        fetch_timeout_ms=10,
    )
    loop.subscribe(["a-batch", "b-interactive", "c-retry"])
    return loop, consumer, jobs, policy


def fill(consumer: FakeConsumer, tps: list[TopicPartition], each: int) -> None:
    for i in range(each):
        for tp in tps:
            consumer.append(tp, b"%s-%d" % (tp.topic.encode(), i))


async def run(loop: ConsumeLoop) -> None:
    await asyncio.wait_for(loop.run(), 10)


def assert_each_partition_in_order_and_whole(jobs: Jobs, consumer: FakeConsumer) -> None:
    for tp, log in consumer.logs.items():
        offsets = [r.offset for r in jobs.handled if (r.topic, r.partition) == tp]
        assert offsets == list(range(len(log))), tp  # none skipped, none twice, in order
        assert consumer.committed[tp] == len(log)


async def test_interactive_work_goes_first_even_behind_a_batch_backlog() -> None:
    loop, consumer, jobs, _ = make(min_share=0)
    fill(consumer, BATCH, 10)
    fill(consumer, INTERACTIVE, 3)
    # Interactive jobs keep arriving while the backlog drains: each goes next.
    jobs.arrivals = {8: [INTERACTIVE[0]], 12: [INTERACTIVE[1]]}
    await run(loop)
    topics = jobs.topics()
    assert topics[:6] == ["b-interactive"] * 6
    assert topics[6:8] == ["a-batch"] * 2
    assert topics[8] == "b-interactive"  # arrived after job 8: the very next one
    assert topics[12] == "b-interactive"
    assert topics.count("a-batch") == 20
    assert_each_partition_in_order_and_whole(jobs, consumer)


async def test_batch_gets_its_minimum_share_while_interactive_work_waits() -> None:
    loop, consumer, jobs, _ = make(min_share=0.25)
    fill(consumer, BATCH, 20)
    fill(consumer, INTERACTIVE, 20)
    await run(loop)
    topics = jobs.topics()
    # One batch job in four while both lanes wait: I I I B, from the first round on.
    assert topics[:8] == ["b-interactive"] * 3 + ["a-batch"] + ["b-interactive"] * 3 + ["a-batch"]
    first_40 = topics[:40]
    assert first_40.count("a-batch") == 10
    # Interactive drained before the rest of the backlog: batch then runs alone at full speed.
    last_interactive = max(i for i, t in enumerate(topics) if t == "b-interactive")
    assert last_interactive < 60
    assert topics[last_interactive + 1 :] == ["a-batch"] * (80 - last_interactive - 1)
    assert_each_partition_in_order_and_whole(jobs, consumer)


async def test_with_no_interactive_work_batch_runs_and_nothing_is_held() -> None:
    loop, consumer, jobs, policy = make(min_share=0.1)
    fill(consumer, BATCH, 5)
    consumer.append(RETRY, b"retry")
    await run(loop)
    assert jobs.topics().count("a-batch") == 10
    assert policy.mode is Mode.FREE
    assert not any(loop.gate.held(tp) for tp in [*BATCH, *INTERACTIVE, RETRY])
    assert_each_partition_in_order_and_whole(jobs, consumer)


async def test_a_partition_paused_with_records_fetched_is_read_again_from_its_position() -> None:
    # The lane pauses a batch partition between rounds: what it had is fetched again later,
    # from the first record not handled, and the other reasons on it stay as they were.
    loop, consumer, jobs, _ = make(min_share=0)
    fill(consumer, BATCH[:1], 4)
    loop.gate.hold(BATCH[0], "unrelated")
    loop.gate.release(BATCH[0], "unrelated")
    jobs.arrivals = {1: [INTERACTIVE[0]], 2: [INTERACTIVE[0]]}
    await run(loop)
    assert jobs.topics() == ["a-batch"] + ["b-interactive"] * 2 + ["a-batch"] * 3
    assert_each_partition_in_order_and_whole(jobs, consumer)


async def test_reasons_are_named_lag_is_exported_and_a_broker_away_keeps_the_decision() -> None:
    loop, consumer, _, policy = make(min_share=0)
    fill(consumer, BATCH, 1)
    fill(consumer, INTERACTIVE, 1)
    await policy.steer(loop)
    assert policy.mode is Mode.INTERACTIVE_FIRST
    # Each lane's backlog on this member, as /metrics exports it.
    assert metrics.LANE_LAG.labels(Lane.BATCH)._value.get() == 2
    assert metrics.LANE_LAG.labels(Lane.INTERACTIVE)._value.get() == 2
    assert all(loop.gate.until(tp, INTERACTIVE_FIRST) is None for tp in BATCH)
    assert all(loop.gate.held(tp) for tp in BATCH)
    assert not any(loop.gate.held(tp) for tp in INTERACTIVE)
    consumer.refuse_end_offsets = KafkaConnectionError("broker away")
    await policy.steer(loop)
    assert policy.mode is Mode.INTERACTIVE_FIRST
    assert all(loop.gate.held(tp) for tp in BATCH)
    assert BATCH_TURN != INTERACTIVE_FIRST
