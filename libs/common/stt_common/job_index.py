"""Job lists: a sorted set per tenant in Redis (the index), written with each job state and read a
page at a time (`GET /api/v1/transcribe`).

THE JOB LISTS. Each tenant has a sorted set `stt:jobs:{tenant}` (member: request_id, score: the
submit time in ms) and every job is also in `stt:jobs-all` (member: job id) for admin keys. A job
enters them when its submit is confirmed or any of its states is applied (so jobs published
straight to Kafka, and a rebuild, index them too); the score only ever grows (ZADD GT: a replay
moves its job to the top, a stale event never moves one down). An index expires with its newest
job, and its members whose job is gone are removed: on write (the oldest, past the TTL) and on
read (any found missing), so a list never shows a job a poll would answer 404 for.

A page walks the set from its cursor (the last member looked at: its score and member); members
with equal scores come in reverse byte order (Redis's order within a score), which the cursor
relies on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from stt_common import tenants
from stt_common.messages import JobRecord

INDEX_PREFIX = "stt:jobs:"
ALL_JOBS_INDEX = "stt:jobs-all"
PRUNE_BATCH = 50  # members looked at per write: bounds the write's work

# The job lists' update of one job, as a Lua function: `_INDEX` runs it alone, and the job store's
# confirm script runs it with the record's expiry (one round trip per confirmed submit).
# index_job(tenant index, all-jobs index, a); a: request_id, job id, score (ms), expire_at (s),
# now (s), job key prefix, the tenant's job id prefix ('' or 'tenant/'), cutoff (ms: older members
# are checked), how many to check. Returns 1, or 0 when the job has already expired.
INDEX_FUNCTION = """
local function index_job(tenant_index, all_index, a)
  local expire_at, now = tonumber(a[4]), tonumber(a[5])
  if expire_at <= now then return 0 end
  local indexes = {tenant_index, all_index}
  local members = {a[1], a[2]}
  local prefixes = {a[6] .. a[7], a[6]}
  for i = 1, 2 do
    local idx = indexes[i]
    redis.call('ZADD', idx, 'GT', a[3], members[i])
    if redis.call('TTL', idx) < 0 then
      redis.call('EXPIREAT', idx, expire_at)
    else
      redis.call('EXPIREAT', idx, expire_at, 'GT')
    end
    local old = redis.call('ZRANGEBYSCORE', idx, '-inf', a[8], 'LIMIT', 0, tonumber(a[9]))
    for _, m in ipairs(old) do
      if redis.call('EXISTS', prefixes[i] .. m) == 0 then redis.call('ZREM', idx, m) end
    end
  end
  return 1
end
"""

# KEYS[1] tenant index, KEYS[2] all-jobs index; ARGV: as `index_job`'s `a`
_INDEX = INDEX_FUNCTION + "return index_job(KEYS[1], KEYS[2], ARGV)\n"


# KEYS[1] an index; ARGV: score, member, count. The `count` members after `member`, if it is still
# in the index with that score; else false (the caller goes by score).
_AFTER = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not s or tonumber(s) ~= tonumber(ARGV[1]) then return false end
local r = redis.call('ZREVRANK', KEYS[1], ARGV[2])
return redis.call('ZREVRANGE', KEYS[1], r + 1, r + tonumber(ARGV[3]), 'WITHSCORES')
"""


def index_key(tenant: str | None) -> str:
    return INDEX_PREFIX + tenants.name_of(tenant)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a job list: the last member looked at, and its score."""

    score: int
    member: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.score}:{self.member}".encode()).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for anything `encode` did not make."""
        try:
            score, sep, member = base64.urlsafe_b64decode(text.encode()).decode().partition(":")
            if not sep or not member:
                raise ValueError
            return cls(int(score), member)
        except (ValueError, binascii.Error, UnicodeError):
            raise ValueError("cursor is not one this API gave out") from None


@dataclass(frozen=True, slots=True)
class Page:
    records: list[JobRecord]
    next_cursor: Cursor | None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class JobIndex:
    def __init__(self, redis: Redis, ttl: int, key_prefix: str) -> None:
        self.redis = redis
        self.ttl = ttl
        self.key_prefix = key_prefix  # of the job keys, which the pruning checks
        self._index = redis.register_script(_INDEX)
        self._after = redis.register_script(_AFTER)

    def entry(
        self, record: JobRecord, expire_at: int, now: float
    ) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of `INDEX_FUNCTION` (`index_job`) for `record`."""
        tenant = tenants.name_of(record.tenant)
        job_id = record.job_id
        args: list[str | int] = [
            record.request_id,
            job_id,
            _ms(record.submitted_at or record.updated_at),
            expire_at,
            int(now),
            self.key_prefix,
            job_id[: len(job_id) - len(record.request_id)],
            int((now - self.ttl) * 1000),
            PRUNE_BATCH,
        ]
        return [index_key(tenant), ALL_JOBS_INDEX], args

    async def add(self, record: JobRecord, expire_at: int, pipe: Pipeline, now: float) -> None:
        """Queue the job lists' update for `record` on `pipe` (one reply)."""
        keys, args = self.entry(record, expire_at, now)
        await self._index(keys=keys, args=args, client=pipe)

    async def page(
        self,
        read: Callable[[Sequence[str]], Awaitable[list[JobRecord | None]]],
        tenant: str | None,
        *,
        since: datetime | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        accept: Callable[[JobRecord], bool] | None = None,
        budget: int = 5000,
    ) -> Page:
        """Up to `limit` jobs that `accept` takes (all without it), newest submit first, after
        `after`; `read` gives the records of job ids (`JobStore.get_many`).

        `tenant` None lists every tenant (`stt:jobs-all`). At most `budget` members are looked
        at per call, so a filter that matches little answers a short page (with a cursor) rather
        than reading the whole index. The cursor is the last member looked at: a page never
        repeats a job of an earlier page and skips none that were listed when the first was read.
        """
        index = ALL_JOBS_INDEX if tenant is None else index_key(tenant)
        since_ms = _ms(since) if since is not None else 0
        found: list[JobRecord] = []
        last: Cursor | None = None
        looked = 0
        # A filter reads ahead in bigger chunks: fewer round trips for the jobs it leaves out.
        size = min(limit if accept is None else max(limit, 500), 1000)
        async for chunk in self._scan(index, since_ms, after, chunk=size):
            ids = [m if tenant is None else tenants.job_id(tenant, m) for _, m in chunk]
            records = await read(ids)
            gone = [m for (_, m), r in zip(chunk, records, strict=True) if r is None]
            if gone:
                await self.redis.zrem(index, *gone)
            for (score, member), record in zip(chunk, records, strict=True):
                last = Cursor(score, member)
                looked += 1
                if record is not None and (accept is None or accept(record)):
                    found.append(record)
                if len(found) >= limit or looked >= budget:
                    return Page(found, last)
        return Page(found, None)

    async def _scan(
        self, index: str, since_ms: int, after: Cursor | None, chunk: int
    ) -> AsyncIterator[list[tuple[int, str]]]:
        """The index's members submitted at or after `since_ms`, newest first, strictly after
        `after`, in chunks of at most `chunk`. Equal scores come in reverse byte order (Redis's
        order within a score), which the cursor relies on."""
        position = after
        while True:
            rows = await self._rows_after(index, position, chunk)
            kept = [(score, member) for score, member in rows if score >= since_ms]
            if kept:
                yield kept
            if len(rows) < chunk or len(kept) < len(rows):
                return
            position = Cursor(*rows[-1])

    async def _rows_after(
        self, index: str, position: Cursor | None, count: int
    ) -> list[tuple[int, str]]:
        """Up to `count` members after `position`. While the position's member is still where
        the cursor saw it, by its rank (one round trip however many jobs share its score);
        else by score: its equal-score neighbours that sort after it, then lower scores."""
        if position is None:
            first = cast(
                list[tuple[bytes, float]],
                await self.redis.zrevrange(index, 0, count - 1, withscores=True),
            )
            return [(int(score), _text(member)) for member, score in first]
        found = await self._after(keys=[index], args=[position.score, position.member, count])
        if found is not None:
            pairs = zip(found[::2], found[1::2], strict=True)
            return [(int(float(_text(score))), _text(member)) for member, score in pairs]
        ties = cast(
            list[bytes], await self.redis.zrevrangebyscore(index, position.score, position.score)
        )
        rows = [(position.score, m) for m in map(_text, ties) if m < position.member][:count]
        lower = cast(
            list[tuple[bytes, float]],
            await self.redis.zrevrangebyscore(
                index, f"({position.score}", "-inf", start=0, num=count, withscores=True
            ),
        )
        rows += [(int(score), _text(member)) for member, score in lower]
        return rows[:count]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
