"""Job state in Redis, and the one place where the ordering rule between updates is enforced.

THE ORDERING RULE. Every stored job has a rank `(generation, phase)`: generation is 1 for a new
job and grows by one with each replay; phase is 1 while PROCESSING and 2 once COMPLETED or
FAILED. An update is applied only if its rank is greater than the stored one. At equal rank:
  * phase 2 (terminal): the first result wins; a second worker's late result is dropped;
  * phase 1 (progress): the newer `updated_at` wins, so progress never goes backwards.
So a late PROCESSING never hides a result, a replay (generation + 1) legitimately moves a FAILED
job back to PROCESSING and on to COMPLETED, and a stale attempt never beats a newer one. The rule
runs inside Redis (Lua) so concurrent projectors cannot interleave a read and a write.

Each key expires `REDIS_JOB_TTL` seconds after the job's own last change (`updated_at`), never
after the moment it was written, so a rebuild from Kafka restores the same expiry.

Keys are job ids (`stt_common.tenants.job_id`): the bare `request_id` for the `default` tenant.

THE JOB LISTS. Each tenant has a sorted set `stt:jobs:{tenant}` (member: request_id, score: the
submit time in ms) and every job is also in `stt:jobs-all` (member: job id) for admin keys. A job
enters them when its submit is confirmed or any of its states is applied (so jobs published
straight to Kafka, and a rebuild, index them too); the score only ever grows (ZADD GT: a replay
moves its job to the top, a stale event never moves one down). An index expires with its newest
job, and its members whose job is gone are removed: on write (the oldest, past the TTL) and on
read (any found missing), so a list never shows a job a poll would answer 404 for.
"""

from __future__ import annotations

import base64
import binascii
import enum
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis.asyncio import BlockingConnectionPool, Connection, Redis, SSLConnection
from redis.asyncio.client import Pipeline

from stt_common import tenants
from stt_common.messages import JobRecord
from stt_common.settings import RedisSettings

KEY_PREFIX = "stt:job:"
INDEX_PREFIX = "stt:jobs:"
ALL_JOBS_INDEX = "stt:jobs-all"
PRUNE_BATCH = 50  # members looked at per write: bounds the write's work

# KEYS[1] job key; ARGV: generation, phase, updated_at (ms), data, expire_at (s), now (s)
_APPLY = """
local g, p, u = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expire_at = tonumber(ARGV[5])
if expire_at <= tonumber(ARGV[6]) then return 'expired' end
local cur = redis.call('HMGET', KEYS[1], 'generation', 'phase', 'updated')
if cur[1] then
  local cg, cp, cu = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3])
  if g < cg or (g == cg and p < cp) then return 'stale' end
  if g == cg and p == cp and (p == 2 or u <= cu) then
    redis.call('EXPIREAT', KEYS[1], expire_at, 'GT')
    return 'same'
  end
end
redis.call('HSET', KEYS[1], 'generation', g, 'phase', p, 'updated', u, 'data', ARGV[4])
redis.call('EXPIREAT', KEYS[1], expire_at)
return 'applied'
"""

# KEYS[1] job key; ARGV: data, updated_at (ms), ttl (s), generation. Returns existing data or nil.
_CREATE = """
local existing = redis.call('HGET', KEYS[1], 'data')
if existing then return existing end
redis.call('HSET', KEYS[1], 'generation', ARGV[4], 'phase', 1, 'updated', ARGV[2], 'data', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return false
"""

# KEYS[1] job key; ARGV: data. Deletes only the record this caller wrote.
_DISCARD = """
if redis.call('HGET', KEYS[1], 'data') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] tenant index, KEYS[2] all-jobs index; ARGV: request_id, job id, score (ms),
# expire_at (s), now (s), job key prefix, the tenant's job id prefix ('' or 'tenant/'),
# cutoff (ms: older members are checked), how many to check
_INDEX = """
local expire_at, now = tonumber(ARGV[4]), tonumber(ARGV[5])
if expire_at <= now then return 0 end
local members = {ARGV[1], ARGV[2]}
local prefixes = {ARGV[6] .. ARGV[7], ARGV[6]}
for i = 1, 2 do
  local idx = KEYS[i]
  redis.call('ZADD', idx, 'GT', ARGV[3], members[i])
  if redis.call('TTL', idx) < 0 then
    redis.call('EXPIREAT', idx, expire_at)
  else
    redis.call('EXPIREAT', idx, expire_at, 'GT')
  end
  local old = redis.call('ZRANGEBYSCORE', idx, '-inf', ARGV[8], 'LIMIT', 0, tonumber(ARGV[9]))
  for _, m in ipairs(old) do
    if redis.call('EXISTS', prefixes[i] .. m) == 0 then redis.call('ZREM', idx, m) end
  end
end
return 1
"""


# KEYS[1] an index; ARGV: score, member, count. The `count` members after `member`, if it is still
# in the index with that score; else false (the caller goes by score).
_AFTER = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not s or tonumber(s) ~= tonumber(ARGV[1]) then return false end
local r = redis.call('ZREVRANK', KEYS[1], ARGV[2])
return redis.call('ZREVRANGE', KEYS[1], r + 1, r + tonumber(ARGV[3]), 'WITHSCORES')
"""


class Outcome(enum.StrEnum):
    APPLIED = "applied"  # stored; a new state
    SAME = "same"  # already held at this rank; nothing changed but the expiry
    STALE = "stale"  # older than what is stored; dropped
    EXPIRED = "expired"  # its TTL has already run out; dropped


def job_key(job_id: str) -> str:
    """The Redis key of a job, by its job id (`stt_common.tenants.job_id`)."""
    return KEY_PREFIX + job_id


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


def connect(settings: RedisSettings) -> Redis:
    """A client over a bounded pool that waits for a free connection (REDIS_POOL_TIMEOUT)
    instead of raising at once when REDIS_MAX_CONNECTIONS are out, as redis-py's default pool
    does at 100. A wait that runs out raises redis.ConnectionError (the API answers 503)."""
    password = settings.password.get_secret_value() if settings.password else None
    pool = BlockingConnectionPool(
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        connection_class=SSLConnection if settings.ssl else Connection,
        host=settings.host,
        port=settings.port,
        db=settings.db,
        password=password,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


class JobStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._apply = redis.register_script(_APPLY)
        self._create = redis.register_script(_CREATE)
        self._discard = redis.register_script(_DISCARD)
        self._index = redis.register_script(_INDEX)
        self._after = redis.register_script(_AFTER)

    def expire_at(self, record: JobRecord) -> int:
        return int(record.updated_at.timestamp()) + self.ttl

    async def get(self, job_id: str) -> JobRecord | None:
        data = await self.redis.hget(job_key(job_id), "data")
        return JobRecord.model_validate_json(data) if data else None

    async def create(self, record: JobRecord, ttl: int) -> tuple[JobRecord | None, str]:
        """Store `record` unless the job exists. Returns (existing record or None, data written)."""
        data = record.model_dump_json(exclude_none=True)
        existing = await self._create(
            keys=[job_key(record.job_id)],
            args=[data, _ms(record.updated_at), ttl, record.generation],
        )
        return (JobRecord.model_validate_json(existing) if existing else None), data

    async def confirm(self, record: JobRecord) -> None:
        """Extend a freshly created record to its full TTL once its event is durable."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expireat(job_key(record.job_id), self.expire_at(record), gt=True)
            await self._add_to_index(record, pipe)
            await pipe.execute()

    async def discard(self, job_id: str, data: str) -> None:
        await self._discard(keys=[job_key(job_id)], args=[data])

    async def apply(self, record: JobRecord, now: float) -> Outcome:
        """Store `record` if the ordering rule allows it (see the module docstring)."""
        (outcome,) = await self.apply_many([record], now)
        return outcome

    async def apply_many(self, records: Sequence[JobRecord], now: float) -> list[Outcome]:
        """`apply` each record, in order, in one round trip (a pipeline keeps the order)."""
        if not records:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                args: list[str | int] = [
                    record.generation,
                    int(record.phase),
                    _ms(record.updated_at),
                    record.model_dump_json(exclude_none=True),
                    self.expire_at(record),
                    int(now),
                ]
                await self._apply(keys=[job_key(record.job_id)], args=args, client=pipe)
                await self._add_to_index(record, pipe, now)
            # Two replies per record: the ordering rule's outcome, then the index's.
            results = (await pipe.execute())[::2]
        return [Outcome(r.decode() if isinstance(r, bytes) else r) for r in results]

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(job_key(job_id), "data")
            found = await pipe.execute()
        return [JobRecord.model_validate_json(data) if data else None for data in found]

    async def delete(self, job_id: str) -> bool:
        return bool(await self.redis.delete(job_key(job_id)))

    async def _add_to_index(
        self, record: JobRecord, pipe: Pipeline, now: float | None = None
    ) -> None:
        """Queue the job lists' update for `record` on `pipe` (one reply)."""
        moment = now if now is not None else time.time()
        tenant = tenants.name_of(record.tenant)
        job_id = record.job_id
        args: list[str | int] = [
            record.request_id,
            job_id,
            _ms(record.submitted_at or record.updated_at),
            self.expire_at(record),
            int(moment),
            KEY_PREFIX,
            job_id[: len(job_id) - len(record.request_id)],
            int((moment - self.ttl) * 1000),
            PRUNE_BATCH,
        ]
        await self._index(keys=[index_key(tenant), ALL_JOBS_INDEX], args=args, client=pipe)

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        since: datetime | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        accept: Callable[[JobRecord], bool] | None = None,
        budget: int = 5000,
    ) -> Page:
        """Up to `limit` jobs that `accept` takes, newest submit first, after `after`.

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
            records = await self.get_many(ids)
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
