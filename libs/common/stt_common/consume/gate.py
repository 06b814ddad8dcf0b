"""Why each partition is paused: fetching resumes only once no reason holds any more.

Several parts of a service pause partitions for their own reasons (a job is running, a retry
is not yet due, too many deliveries are pending, a higher-priority topic has work). Each
names its reason; `apply` pauses a partition while any reason holds it and resumes it when none
does, so one part can never resume what another still needs paused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from aiokafka.structs import TopicPartition


class Pausable(Protocol):
    def assignment(self) -> set[TopicPartition]: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...


class Gate:
    """Pause reasons, per partition (optionally until a moment) and for all partitions at once."""

    def __init__(self) -> None:
        self._held: dict[TopicPartition, dict[str, datetime | None]] = {}
        self._all: set[str] = set()

    def hold(self, tp: TopicPartition, reason: str, until: datetime | None = None) -> None:
        self._held.setdefault(tp, {})[reason] = until

    def release(self, tp: TopicPartition, reason: str) -> None:
        reasons = self._held.get(tp)
        if reasons is not None:
            reasons.pop(reason, None)
            if not reasons:
                del self._held[tp]

    def hold_all(self, reason: str) -> None:
        self._all.add(reason)

    def release_all(self, reason: str) -> None:
        self._all.discard(reason)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: their reasons went with them."""
        for tp in partitions:
            self._held.pop(tp, None)

    def until(self, tp: TopicPartition, reason: str) -> datetime | None:
        return self._held.get(tp, {}).get(reason)

    def held(self, tp: TopicPartition, now: datetime | None = None) -> bool:
        if self._all:
            return True
        now = now or datetime.now(UTC)
        reasons = self._held.get(tp, {})
        for reason, until in list(reasons.items()):
            if until is not None and until <= now:
                self.release(tp, reason)  # due: this reason is over
        return bool(self._held.get(tp))

    def apply(self, consumer: Pausable) -> None:
        """Pause what is held and resume the rest, over the current assignment."""
        now = datetime.now(UTC)
        assigned = consumer.assignment()
        held = [tp for tp in assigned if self.held(tp, now)]
        free = [tp for tp in assigned if tp not in set(held)]
        if held:
            consumer.pause(*held)
        if free:
            consumer.resume(*free)
