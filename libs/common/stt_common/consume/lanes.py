"""Priority lanes on the consume loop: interactive work first, batch work a guaranteed share.

A lane is a set of topics (its submit topic: `KafkaSettings.lane_topic`). Before every fetch
(`Handler.before_fetch`, hook (b) of `loop.py`) the policy reads, from the broker, how many
records wait on this member's assigned partitions of each lane (end offset minus position),
and pauses the lane that must wait through the loop's `Gate`, under a named reason:

  * `INTERACTIVE_FIRST` on the batch partitions while interactive records wait;
  * `BATCH_TURN` on the interactive partitions while batch work has earned its turn (SHARE).

With no interactive record waiting, nothing is paused by a lane: batch work runs at full speed.

ORDERING AND COMMITS are the loop's, untouched: a paused partition keeps its position (aiokafka
drops what it had prefetched for it and fetches again from that position on resume), so no
record is skipped and none is reordered within its partition; offsets move only past records the
handler marked done. Topics in no lane (retry topics) are never paused by lanes.

SHARE. While both lanes have work waiting ("contention"), the handler's time is counted per
lane (records of one call share its time by count): each second of interactive work earns
batch `min_share` seconds of credit, each second of batch work costs `1 - min_share`, so over a
contention period batch gets `min_share` of the time, give or take one job. Batch takes its turn
once its credit pays for one batch job of the usual length (a running mean), so one interactive
job earns no immediate turn; credit is not banked: it is reset when contention ends.

Each member decides over its own assignment (partitions of both lanes are spread over the group
the same way), so the guarantees hold per transcriber. A broker that cannot be asked keeps the
last decision; the fetch then reports the broker's trouble by the loop's error policy.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.structs import TopicPartition

from stt_common import metrics
from stt_common.consume.loop import ConsumeLoop, Handler, Ready
from stt_common.messages import Lane
from stt_common.settings import KafkaSettings

log = logging.getLogger(__name__)
INTERACTIVE_FIRST = "lane:interactive_first"  # gate reason on batch partitions
BATCH_TURN = "lane:batch_turn"  # gate reason on interactive partitions
SMOOTHING = 0.2  # weight of the newest batch job in the running mean of their length


class Mode(enum.StrEnum):
    FREE = "free"  # no lane paused
    INTERACTIVE_FIRST = "interactive_first"
    BATCH_TURN = "batch_turn"


class LanePolicy:
    def __init__(
        self,
        topics: dict[Lane, Iterable[str]],
        min_share: float,
        broker_timeout: float = 2.0,
    ) -> None:
        if not 0 <= min_share < 1:
            raise ValueError("min_share must be in [0, 1)")
        self.topics = {lane: frozenset(names) for lane, names in topics.items()}
        self.min_share = min_share
        self.broker_timeout = broker_timeout
        self.mode = Mode.FREE
        self.contended = False
        self.credit = 0.0  # seconds of batch work owed (SHARE)
        self.batch_job_seconds: float | None = None  # running mean of one batch record's time
        self.job_seconds: float | None = None  # the same over every lane: the guess before one
        self.waiting: dict[Lane, int] = dict.fromkeys(Lane, 0)

    def lane_of(self, topic: str) -> Lane | None:
        for lane, names in self.topics.items():
            if topic in names:
                return lane
        return None

    async def steer(self, loop: ConsumeLoop) -> None:
        """Decide which lane may be fetched from this round and hold the other in the gate."""
        consumer = loop.consumer
        mine: dict[Lane, list[TopicPartition]] = {lane: [] for lane in Lane}
        for tp in consumer.assignment():
            lane = self.lane_of(tp.topic)
            if lane is not None:
                mine[lane].append(tp)
        try:
            waiting = await self._waiting(consumer, [tp for tps in mine.values() for tp in tps])
        except Exception as exc:  # keep the last decision; the fetch reports a broker failure
            log.debug("lane backlog not read (%r); keeping %s", exc, self.mode)
            return
        for lane, tps in mine.items():
            self.waiting[lane] = sum(waiting[tp] for tp in tps)
            metrics.LANE_LAG.labels(lane).set(self.waiting[lane])
        interactive, batch = self.waiting[Lane.INTERACTIVE], self.waiting[Lane.BATCH]
        self.contended = interactive > 0 and batch > 0
        if not self.contended:
            self.credit = 0.0
        if interactive == 0:
            self.mode = Mode.FREE
        elif self.contended and self._batch_has_earned_a_turn():
            self.mode = Mode.BATCH_TURN
        else:
            self.mode = Mode.INTERACTIVE_FIRST
        self._apply(loop, mine)

    def ran(self, ready: Ready, seconds: float) -> None:
        """The handler spent `seconds` on `ready`: charge each lane its records' part."""
        counts = dict.fromkeys(Lane, 0)
        total = 0
        for tp, records in ready.items():
            total += len(records)
            lane = self.lane_of(tp.topic)
            if lane is not None:
                counts[lane] += len(records)
        if total == 0:
            return
        spent = {lane: seconds * n / total for lane, n in counts.items()}
        for lane, share in spent.items():
            if share:
                metrics.LANE_SECONDS.labels(lane).inc(share)
        self.job_seconds = _mean(self.job_seconds, seconds / total)
        if counts[Lane.BATCH]:
            self.batch_job_seconds = _mean(
                self.batch_job_seconds, spent[Lane.BATCH] / counts[Lane.BATCH]
            )
        if self.contended:
            self.credit += self.min_share * spent[Lane.INTERACTIVE]
            self.credit -= (1 - self.min_share) * spent[Lane.BATCH]

    def _batch_has_earned_a_turn(self) -> bool:
        if self.min_share == 0 or self.credit <= 0:
            return False
        usual = self.batch_job_seconds or self.job_seconds or 0.0
        fare = (1 - self.min_share) * usual
        return self.credit >= fare

    def _apply(self, loop: ConsumeLoop, mine: dict[Lane, list[TopicPartition]]) -> None:
        for tp in mine[Lane.BATCH]:
            if self.mode is Mode.INTERACTIVE_FIRST:
                loop.gate.hold(tp, INTERACTIVE_FIRST)
            else:
                loop.gate.release(tp, INTERACTIVE_FIRST)
        for tp in mine[Lane.INTERACTIVE]:
            if self.mode is Mode.BATCH_TURN:
                loop.gate.hold(tp, BATCH_TURN)
            else:
                loop.gate.release(tp, BATCH_TURN)

    async def _waiting(self, consumer: Any, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Records after this member's position on each of `tps`, from the broker's end offsets
        (the consumer's own highwater marks go stale while a partition is paused)."""
        if not tps:
            return {}
        ends = await asyncio.wait_for(consumer.end_offsets(tps), self.broker_timeout)

        async def position(tp: TopicPartition) -> int | None:
            try:
                found: int = await asyncio.wait_for(consumer.position(tp), 0.5)
            except Exception:  # being reset (just assigned): known after the next fetch
                return None
            return found

        positions = await asyncio.gather(*(position(tp) for tp in tps))  # 0.5 s at most
        waiting: dict[TopicPartition, int] = {}
        for tp, at in zip(tps, positions, strict=True):
            # An unknown position counts as work waiting, if the partition has any records.
            waiting[tp] = (1 if ends[tp] > 0 else 0) if at is None else max(0, ends[tp] - at)
        return waiting


def _mean(last: float | None, new: float) -> float:
    return new if last is None else last + SMOOTHING * (new - last)


def submit_lanes(settings: KafkaSettings) -> LanePolicy:
    """The policy over the submit topics of `settings`, one per lane."""
    return LanePolicy(
        {lane: [settings.lane_topic(lane)] for lane in Lane}, settings.lane_batch_min_share
    )


class Laned:
    """`handler`, its fetches steered by `policy`: what a service gives the consume loop. Its
    other hooks (`before_fetch`, `revoked`, `stopping`, ...) are the handler's own."""

    def __init__(
        self, handler: Handler, policy: LanePolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.handler = handler
        self.policy = policy
        self.clock = clock

    async def before_fetch(self, loop: ConsumeLoop) -> None:
        await self.policy.steer(loop)
        inner = getattr(self.handler, "before_fetch", None)
        if inner is not None:
            result = inner(loop)
            if inspect.isawaitable(result):
                await result

    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        started = self.clock()
        try:
            await self.handler.handle(ready, loop)
        finally:
            self.policy.ran(ready, self.clock() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)
