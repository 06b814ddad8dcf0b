"""Which offsets may be committed when records finish out of order.

Records can finish out of order (concurrent webhooks, cross-job batches): record 7 can finish
before record 5. The committed offset of a partition only moves past a record once every
record before it has finished too; a crash then re-reads the unfinished ones.
"""

from __future__ import annotations

from collections import deque

from aiokafka.structs import TopicPartition


class Offsets:
    def __init__(self) -> None:
        self._order: dict[TopicPartition, deque[int]] = {}  # taken, in offset order
        self._done: dict[TopicPartition, set[int]] = {}
        self._floor: dict[TopicPartition, int] = {}  # every offset below it is done

    def take(self, tp: TopicPartition, offset: int) -> None:
        self.untake(tp, offset)  # read again after a seek: taken anew, in order
        self._order.setdefault(tp, deque()).append(offset)
        self._done.setdefault(tp, set())

    def finish(self, tp: TopicPartition, offset: int) -> None:
        if tp in self._done:  # a revoked partition is no longer tracked
            self._done[tp].add(offset)

    def untake(self, tp: TopicPartition, offset: int) -> None:
        """Forget `offset` and every later offset of `tp`: they will be read again."""
        order = self._order.get(tp)
        if order is None:
            return
        while order and order[-1] >= offset:
            self._done[tp].discard(order.pop())

    def is_done(self, tp: TopicPartition, offset: int) -> bool:
        return offset < self._floor.get(tp, 0) or offset in self._done.get(tp, ())

    def first_pending(self, tp: TopicPartition) -> int | None:
        """The lowest offset of `tp` taken and not done (every taken one below it is done), or
        None when there is none: what a commit of `tp` may move to at most right now."""
        done = self._done.get(tp, set())
        for offset in self._order.get(tp, ()):
            if offset not in done:
                return offset
        return None

    def committable(self) -> dict[TopicPartition, int]:
        """Next offset to commit per partition that moved; forgets what it returns."""
        moves: dict[TopicPartition, int] = {}
        for tp, order in self._order.items():
            done = self._done[tp]
            while order and order[0] in done:
                done.discard(offset := order.popleft())
                moves[tp] = self._floor[tp] = offset + 1
        return moves

    def forget(self, tp: TopicPartition) -> None:
        self._order.pop(tp, None)
        self._done.pop(tp, None)
        self._floor.pop(tp, None)
