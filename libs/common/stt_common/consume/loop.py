"""The one consume loop that every service configures: fetch, hand over, commit, rebalance, stop.

A service gives the loop a `Handler`; the loop owns the consumer. Per round it applies the
pause `Gate`, commits (per `CommitPolicy`), fetches, and hands the handler the ready records of
that fetch in offset order: one partition per call (`by_partition`, the default, so a failure
is charged to its own partition only), or every partition at once. The handler marks each
record `done` once its outcome is durable; the commit never passes a record that is not done
(`Offsets`). What happens on every kind of error is `ErrorPolicy` (see `policy.py`); the loop
applies it the same way for every service.

Invariants:
  * Per partition, records reach the handler in offset order, and a rewound partition
    (`rewind`) is read again from that offset: nothing after an unfinished record is committed.
  * A revoked partition is committed up to its finished prefix, then forgotten (`Handler.revoked`
    is called first, so a handler can finish or cancel what it holds); its next owner re-reads
    the rest. `owns(tp)` says whether this member still holds a partition (fencing).
  * `stop` ends the loop between rounds; `Handler.stopping` then lets the handler hand work back,
    and the finished prefix is committed.

TWO HOOKS, so later features plug in without a new loop:
  (a) Cross-partition batches (cross-job batching): with `max_records` > 1 and
      `by_partition=False` the handler gets the ready records of several partitions in one
      call, may hold some while it runs others, and marks `done` only the records whose jobs
      are terminal; with `CommitPolicy.BEFORE_FETCH` each partition is committed only up to
      the record before its first one not done.
      `while_polling(work)` keeps the group membership while a long batch runs.
  (b) Priority between topics (priority lanes): `Handler.before_fetch(loop)` runs before every
      fetch; it may `loop.gate.hold(tp, reason)` the partitions of a low-priority topic while a
      high-priority one has work, and `release` them after. The gate keeps every other reason
      (a running job, a retry not yet due) intact. It may be a coroutine function. `lanes.py`
      is the policy built on it (`Laned` wraps a handler).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from stt_common import bus, metrics, tasks
from stt_common.consume.gate import Gate
from stt_common.consume.offsets import Offsets
from stt_common.consume.policy import CommitPolicy, ErrorPolicy, Verdict

log = logging.getLogger(__name__)
Ready = Mapping[TopicPartition, Sequence[bus.Record]]
DeadLetter = Callable[[bus.Record, str], Awaitable[None]]  # (record, reason)
T = TypeVar("T")
BUSY = "busy"
DEFAULT_ERRORS = ErrorPolicy()  # gate reason: `while_polling` runs work; every partition waits


class HandedBack(Exception):
    """`while_polling` cancelled its work because the service is stopping."""


class Handler(Protocol):
    async def handle(self, ready: Ready, loop: ConsumeLoop) -> None:
        """Act on the fetched records; call `loop.done(record)` once each one's outcome is out."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop._revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.loop.gate.apply(self.loop.consumer)  # e.g. a running job keeps new ones paused


class ConsumeLoop:
    def __init__(
        self,
        consumer: Any,  # AIOKafkaConsumer, or a fake with the same methods
        handler: Handler,
        *,
        commit: CommitPolicy,
        stop: asyncio.Event,
        dead_letter: DeadLetter,
        errors: ErrorPolicy = DEFAULT_ERRORS,
        max_records: int = 500,
        fetch_timeout_ms: int = 500,
        by_partition: bool = True,
    ) -> None:
        self.consumer = consumer
        self.handler = handler
        self.commit_policy = commit
        self.stop = stop
        self.dead_letter = dead_letter
        self.errors = errors
        self.max_records = max_records  # the handler may change it between rounds
        self.fetch_timeout_ms = fetch_timeout_ms
        self.by_partition = by_partition  # False: the handler gets every partition at once
        self.gate = Gate()
        self.offsets = Offsets()
        self.unsent: dict[TopicPartition, int] = {}  # commits that failed; sent again
        self.lag = metrics.LagReporter(consumer)
        self._backoff = errors.backoff_first
        self._failures: dict[tuple[TopicPartition, int], int] = {}  # (tp, offset) -> failures
        self._one_at_a_time: set[TopicPartition] = set()  # isolating a failing record
        self._leases: dict[TopicPartition, int] = {}  # grows each time a partition is revoked

    def subscribe(self, topics: Sequence[str]) -> None:
        self.consumer.subscribe(list(topics), listener=_Listener(self))

    def owns(self, tp: TopicPartition, lease: int | None = None) -> bool:
        """Whether this member still holds `tp` and, given the `lease` taken when work on it
        began, has held it without a break since (a partition revoked and assigned back in
        between was another member's meanwhile): the fence before publishing for `tp`."""
        held = tp in self.consumer.assignment()
        return held and (lease is None or self._leases.get(tp, 0) == lease)

    def lease(self, tp: TopicPartition) -> int:
        return self._leases.get(tp, 0)

    async def run(self) -> None:
        try:
            while not self.stop.is_set():
                await self._round()
        finally:
            stopping = getattr(self.handler, "stopping", None)
            if stopping is not None:
                await stopping(self)
            await self.flush()

    async def _round(self) -> None:
        before_fetch = getattr(self.handler, "before_fetch", None)
        if before_fetch is not None:
            steered = before_fetch(self)
            if inspect.isawaitable(steered):  # it may ask the broker (lanes.py)
                await steered
        self.gate.apply(self.consumer)
        if self.commit_policy is CommitPolicy.BEFORE_FETCH:
            await self.flush()
        try:
            ready = await self.consumer.getmany(
                timeout_ms=self.fetch_timeout_ms, max_records=max(1, self.max_records)
            )
        except Exception as exc:
            if self.errors.on_fetch(exc) is Verdict.STOP:
                raise
            log.warning("fetch failed (%r); trying again", exc)
            await self._pause()
            return
        await self.lag.maybe_update()
        ready = self._narrow(ready)
        for records in ready.values():
            for record in records:
                self.offsets.take(TopicPartition(record.topic, record.partition), record.offset)
        if not ready:
            return
        # Per partition, a failure is charged to the partition that raised it, and the others
        # go on; a cross-partition batch fails (and is retried) as a whole.
        groups = [{tp: rs} for tp, rs in ready.items()] if self.by_partition else [ready]
        failed = False
        for group in groups:
            try:
                await self.handler.handle(group, self)
            except Exception as exc:
                await self._failed(group, exc)
                failed = True
                continue
            for tp, records in group.items():
                self._one_at_a_time.discard(tp)
                for record in records:
                    self._failures.pop((tp, record.offset), None)
        if failed:
            await self._pause()
        else:
            self._backoff = self.errors.backoff_first

    def _narrow(self, ready: Ready) -> dict[TopicPartition, Sequence[bus.Record]]:
        """While a partition isolates a failing record, only its first record goes through."""
        narrowed: dict[TopicPartition, Sequence[bus.Record]] = {}
        for tp, records in ready.items():
            if tp in self._one_at_a_time and len(records) > 1:
                self.consumer.seek(tp, records[1].offset)
                records = records[:1]
            narrowed[tp] = records
        return narrowed

    async def _failed(self, ready: Ready, exc: Exception) -> None:
        verdict = self.errors.on_handle(exc)
        for tp, records in ready.items():
            pending = [r for r in records if not self.offsets.is_done(tp, r.offset)]
            if not pending:
                continue
            first = pending[0]
            if verdict is Verdict.ISOLATE:
                key = (tp, first.offset)
                self._failures[key] = failures = self._failures.get(key, 0) + 1
                if len(pending) > 1:
                    self._one_at_a_time.add(tp)
                elif failures >= self.errors.attempts_before_dead_letter:
                    log.error(
                        "%s[%d]@%d keeps failing (%r)", tp.topic, tp.partition, first.offset, exc
                    )
                    await self._give_up(tp, first, exc)
                    continue
            log.warning(
                "handling %s[%d]@%d failed (%r); retrying",
                tp.topic,
                tp.partition,
                first.offset,
                exc,
            )
            self.rewind(tp, first.offset)

    async def _give_up(self, tp: TopicPartition, record: bus.Record, exc: Exception) -> None:
        try:
            await self.dead_letter(record, f"could not be handled: {exc.__class__.__name__}")
        except Exception as dead:  # the dead letter itself failed: try the record again later
            log.warning("dead letter not sent (%r); retrying", dead)
            self.rewind(tp, record.offset)
            return
        self._failures.pop((tp, record.offset), None)
        self._one_at_a_time.discard(tp)
        await self.done(record)

    async def _pause(self) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), self._backoff)
        except TimeoutError:
            pass
        self._backoff = min(self._backoff * 2, self.errors.backoff_max)

    def rewind(self, tp: TopicPartition, offset: int) -> None:
        """Read `tp` again from `offset` (not finished; nothing from there on is committed)."""
        self.offsets.untake(tp, offset)
        if self.owns(tp):
            self.consumer.seek(tp, offset)

    async def done(self, *records: bus.Record) -> None:
        """The `records`' outcomes are out: each offset may be committed once all before it
        are done too."""
        for record in records:
            self.offsets.finish(TopicPartition(record.topic, record.partition), record.offset)
        if self.commit_policy is CommitPolicy.ON_DONE:
            await self.flush()

    async def flush(self) -> None:
        """Commit every owned partition's finished prefix (and what failed to commit before)."""
        assigned = self.consumer.assignment()
        moves = self.unsent | self.offsets.committable()
        moves = {tp: offset for tp, offset in moves.items() if tp in assigned}
        self.unsent = {}
        if not moves:
            return
        try:
            await self.consumer.commit(moves)
        except Exception as exc:
            if self.errors.on_commit(exc) is Verdict.DROP:
                log.warning("commit refused (%r): partitions moved; records may run twice", exc)
            else:
                log.warning("commit failed (%r); trying again", exc)
                self.unsent = moves

    async def _revoked(self, revoked: list[TopicPartition]) -> None:
        hook = getattr(self.handler, "revoked", None)
        if hook is not None:
            await hook(revoked, self)
        await self.flush()  # keep what is finished
        for tp in revoked:
            self._leases[tp] = self._leases.get(tp, 0) + 1
            self.offsets.forget(tp)
            self.unsent.pop(tp, None)
            self._one_at_a_time.discard(tp)
        self.gate.forget(revoked)

    async def while_polling(self, work: Awaitable[T], every: float, grace: float) -> T:
        """Await `work` while polling with every partition paused, so the group keeps this
        member however long it takes; on `stop`, `work` gets `grace` seconds, then is cancelled
        and `HandedBack` raised."""
        task = asyncio.ensure_future(work)
        self.gate.hold_all(BUSY)
        self.gate.apply(self.consumer)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=every)
                if self.stop.is_set() and deadline is None:
                    deadline = loop.time() + grace
                if deadline is not None and loop.time() > deadline and not task.done():
                    await tasks.stop(task)
                    raise HandedBack()
                await self._keep_alive()
            return task.result()
        finally:
            if not task.done():  # a fetch error that stops the service: the work goes too
                task.cancel()
            self.gate.release_all(BUSY)

    async def _keep_alive(self) -> None:
        self.gate.apply(self.consumer)  # partitions assigned since the last poll
        try:
            strays = await self.consumer.getmany(timeout_ms=0)
        except Exception as exc:
            if self.errors.on_fetch(exc) is Verdict.STOP:
                raise
            log.warning("keep-alive poll failed (%r); the work goes on", exc)
            return
        for tp, records in strays.items():
            self.consumer.seek(tp, records[0].offset)  # not ours to run yet; fetch again later
        await self.lag.maybe_update()
