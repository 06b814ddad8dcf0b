"""Which offsets may be committed when records finish out of order.

Deliveries run concurrently, so record 7 can finish before record 5. The committed offset of a
partition only moves past a record once every record before it has finished too; a crash then
re-reads the unfinished ones (and `marks` skips those already sent).
"""

from __future__ import annotations

from collections import deque

from aiokafka.structs import TopicPartition


class Offsets:
    def __init__(self) -> None:
        self._order: dict[TopicPartition, deque[int]] = {}  # taken, in offset order
        self._done: dict[TopicPartition, set[int]] = {}

    def take(self, tp: TopicPartition, offset: int) -> None:
        self._order.setdefault(tp, deque()).append(offset)
        self._done.setdefault(tp, set())

    def finish(self, tp: TopicPartition, offset: int) -> None:
        if tp in self._done:  # a revoked partition is no longer tracked
            self._done[tp].add(offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Next offset to commit per partition that moved; forgets what it returns."""
        moves: dict[TopicPartition, int] = {}
        for tp, order in self._order.items():
            done = self._done[tp]
            while order and order[0] in done:
                done.discard(offset := order.popleft())
                moves[tp] = offset + 1
        return moves

    def forget(self, tp: TopicPartition) -> None:
        self._order.pop(tp, None)
        self._done.pop(tp, None)
