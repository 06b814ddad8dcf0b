"""Jobs deleted by their client: a Redis marker every service can see.

`DELETE /api/v1/transcribe/{id}` writes `stt:cancel:{id}` = the moment of the delete (ms since
the epoch), expiring with the job's TTL, and then deletes the job. A job is *covered* by the
marker when it was submitted at or before that moment:

* the transcriber ends a covered job at its next safe point (before downloading, before
  transcribing) as FAILED, "Cancelled by client";
* the projector drops covered events, so a late progress or result never brings the job back.

A new submit of the same `request_id` after the delete is newer than the marker and runs as usual
(API hosts' clocks are assumed to agree to well under a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from redis.asyncio import Redis

from stt_common.messages import ErrorType

KEY_PREFIX = "stt:cancel:"
CANCELLED_MESSAGE = "Cancelled by client"
CANCELLED_TYPE = ErrorType.CANCELLED


def cancel_key(request_id: str) -> str:
    return KEY_PREFIX + request_id


async def mark(redis: Redis, request_id: str, at: datetime, ttl: int) -> None:
    await redis.set(cancel_key(request_id), int(at.timestamp() * 1000), ex=ttl)


async def cancelled_at_ms(redis: Redis, request_id: str) -> int | None:
    value = await redis.get(cancel_key(request_id))
    return int(value) if value is not None else None


async def cancelled_at_many(redis: Redis, request_ids: Sequence[str]) -> list[int | None]:
    """`cancelled_at_ms` of each job, in one round trip."""
    if not request_ids:
        return []
    values = await redis.mget([cancel_key(r) for r in request_ids])
    return [int(v) if v is not None else None for v in values]


def is_covered(cancelled_at: int | None, submitted_at: datetime | None) -> bool:
    """True when a delete at `cancelled_at` (ms) covers a submission at `submitted_at`."""
    if cancelled_at is None:
        return False
    return submitted_at is None or int(submitted_at.timestamp() * 1000) <= cancelled_at


async def covers(redis: Redis, request_id: str, submitted_at: datetime | None) -> bool:
    """True when `request_id` was deleted after (or, without a time, at all) this submission."""
    return is_covered(await cancelled_at_ms(redis, request_id), submitted_at)
