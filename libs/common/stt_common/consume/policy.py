"""The consume loop's two explicit policies: when offsets are committed, and what an error does.

COMMIT. An offset moves past a record only once the handler has called `ConsumeLoop.done` for it
and for every record before it on its partition (`Offsets`), so records may finish out of order
(concurrent webhooks, a batch that mixes jobs) and a crash re-reads exactly the unfinished ones.
`CommitPolicy` says only *when* that finished prefix is sent to Kafka.

ERRORS (one table for every service, `ErrorPolicy.verdict`):
  * commit refused because the partition moved (CommitFailedError, IllegalStateError): dropped;
    the partition's new owner re-reads from the last commit (the ordering rule makes it harmless);
  * any other commit error: kept and sent again before the next fetch;
  * fetch error that Kafka calls retriable, a lost connection: logged, the loop backs off and
    fetches again; any other fetch error stops the service (its supervisor restarts it);
  * handler error that is transient (Redis, a retriable Kafka error, the network, a timeout):
    the partition is rewound to the records and fetched again after a growing pause, for ever;
  * any other handler error (a bug, a record Kafka refuses as too large): the partition is
    retried one record at a time; a record that still fails `attempts_before_dead_letter` times
    is dead-lettered and passed, so no record can stop its partition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
)
from redis.exceptions import RedisError


class CommitPolicy(enum.StrEnum):
    """When the finished prefix of each partition is committed."""

    # At once, awaited, inside `ConsumeLoop.done`: nothing else is read before the commit is
    # out (one slow job at a time: the transcriber; a batch per partition: the projector).
    ON_DONE = "on_done"
    # Before each fetch, on revoke and on stop, all partitions in one request (many records
    # finishing concurrently: webhooks; a cross-job batch that commits each partition up to its
    # last terminal job).
    BEFORE_FETCH = "before_fetch"


class Verdict(enum.StrEnum):
    RETRY = "retry"  # transient: rewind, back off, fetch again
    ISOLATE = "isolate"  # not transient: retry one record at a time, then dead-letter it
    DROP = "drop"  # commit refused because the partition moved: its new owner decides
    STOP = "stop"  # the service cannot go on (misconfiguration, authorisation)


REBALANCED = (CommitFailedError, IllegalStateError)


@dataclass(frozen=True)
class ErrorPolicy:
    attempts_before_dead_letter: int = 3
    backoff_first: float = 0.5
    backoff_max: float = 5.0

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, KafkaError):
            return bool(getattr(exc, "retriable", False)) or isinstance(
                exc, KafkaConnectionError | KafkaTimeoutError
            )
        return isinstance(exc, RedisError | OSError | TimeoutError | ConnectionError)

    def on_commit(self, exc: BaseException) -> Verdict:
        return Verdict.DROP if isinstance(exc, REBALANCED) else Verdict.RETRY

    def on_fetch(self, exc: BaseException) -> Verdict:
        return Verdict.RETRY if self.transient(exc) else Verdict.STOP

    def on_handle(self, exc: BaseException) -> Verdict:
        return Verdict.RETRY if self.transient(exc) else Verdict.ISOLATE
