"""Job state in Redis, and the one place where the ordering rule between updates is enforced.

THE ORDERING RULE. Every stored job has a `Rank` `(generation, phase)`: generation is 1 for a new
job and grows by one with each replay; phase is 1 while PROCESSING and 2 once COMPLETED or
FAILED. An update is applied only if its rank is greater than the stored one. At equal rank:
  * phase 2 (terminal): the first result wins; a second worker's late result is dropped;
  * phase 1 (progress): the newer `updated_at` wins, unless it comes from an earlier attempt
    (retry) or, within one attempt, lowers `progress` (absent counts as below 0), so
    progress never goes backwards, not even when a worker that lost its partition (frozen past
    the session timeout) reports after the job's new owner.
So a late PROCESSING never hides a result, a replay (generation + 1) legitimately moves a FAILED
job back to PROCESSING and on to COMPLETED, and a stale attempt never beats a newer one. The rule
runs inside Redis (Lua) so concurrent projectors cannot interleave a read and a write; `Rank`,
`rank` and `settles` are its Python side (the script's arguments, and the transcriber's "already
final?" check), so the rule is written once here and nowhere else.

Each key expires `REDIS_JOB_TTL` seconds after the job's own last change (`updated_at`), never
after the moment it was written, so a rebuild from Kafka restores the same expiry.

Keys are job ids (`stt_common.tenants.job_id`): the bare `request_id` for the `default` tenant.
The job lists (`stt_common.job_index`) are written in the same round trips.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from redis.asyncio import BlockingConnectionPool, Connection, Redis, SSLConnection

from stt_common.job_index import INDEX_FUNCTION, Cursor, JobIndex, Page
from stt_common.messages import JobRecord, Phase
from stt_common.settings import RedisSettings
from stt_common.store_epoch import RESTORING_DETAIL, StoreRestoring, StoreState

KEY_PREFIX = "stt:job:"

# KEYS[1] job key; ARGV: generation, phase, updated_at (ms), data, expire_at (s), now (s),
# attempt, progress (-1 when absent)
_APPLY = """
local g, p, u = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a, pr = tonumber(ARGV[7]), tonumber(ARGV[8])
local expire_at = tonumber(ARGV[5])
if expire_at <= tonumber(ARGV[6]) then return 'expired' end
local cur = redis.call('HMGET', KEYS[1], 'generation', 'phase', 'updated', 'attempt', 'progress')
if cur[1] then
  local cg, cp, cu = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3])
  local ca, cpr = tonumber(cur[4] or '0'), tonumber(cur[5] or '-1')
  if g < cg or (g == cg and p < cp) then return 'stale' end
  if g == cg and p == cp then
    if p == 2 or u <= cu then
      redis.call('EXPIREAT', KEYS[1], expire_at, 'GT')
      return 'same'
    end
    if a < ca or (a == ca and pr < cpr) then return 'stale' end
  end
end
redis.call('HSET', KEYS[1], 'generation', g, 'phase', p, 'updated', u, 'data', ARGV[4],
  'attempt', a, 'progress', pr)
redis.call('EXPIREAT', KEYS[1], expire_at)
return 'applied'
"""

# KEYS[1] job key, then optionally KEYS[2] the store's epoch marker (stt_common.store_epoch) and
# KEYS[3] a key read along with an existing job; ARGV: data, updated_at (ms), ttl (s), generation.
# Returns NOT_READY (writing nothing) when KEYS[2] is given and the store is not READY; nil once
# created; else {existing data, the value at KEYS[3] or nil}.
NOT_READY = -1
_CREATE = f"""
if KEYS[2] and redis.call('HGET', KEYS[2], 'state') ~= '{StoreState.READY}' then
  return {NOT_READY}
end
local existing = redis.call('HGET', KEYS[1], 'data')
if existing then
  if KEYS[3] then return {{existing, redis.call('GET', KEYS[3])}} end
  return {{existing}}
end
redis.call('HSET', KEYS[1], 'generation', ARGV[4], 'phase', 1, 'updated', ARGV[2], 'data', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return false
"""

# KEYS[1] tenant index, KEYS[2] all-jobs index, KEYS[3] job key; ARGV: the index's (`index_job`),
# whose 4th is the job's expire_at (s). The full TTL (never shortened) and the job lists' entry of
# a job whose submit event is durable, in one call.
_CONFIRM_BODY = """
redis.call('EXPIREAT', KEYS[3], ARGV[4], 'GT')
return index_job(KEYS[1], KEYS[2], ARGV)
"""
_CONFIRM = INDEX_FUNCTION + _CONFIRM_BODY

# KEYS[1] job key; ARGV: data. Deletes only the record this caller wrote.
_DISCARD = """
if redis.call('HGET', KEYS[1], 'data') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ApplyOutcome(enum.StrEnum):
    APPLIED = "applied"  # stored; a new state
    SAME = "same"  # already held at this rank; nothing changed but the expiry
    STALE = "stale"  # older than what is stored; dropped
    EXPIRED = "expired"  # its TTL has already run out; dropped


class Created(NamedTuple):
    """What `JobStore.create_if_ready` found or did."""

    existing: JobRecord | None  # the job already stored under this id: nothing was written
    written: str  # the data written when `existing` is None (what `discard` removes)
    pending_event: bytes | None  # with `existing`: the value at `pending_event_key`, if any


class Rank(NamedTuple):
    """Where an update stands in the ordering rule; a greater rank supersedes a smaller one."""

    generation: int
    phase: Phase


def rank(record: JobRecord) -> Rank:
    return Rank(record.generation, record.phase)


def settles(stored: JobRecord, generation: int) -> bool:
    """Whether `stored` already outranks anything a run of `generation` could report (it is
    terminal at that generation, or at a later one): the run would change nothing."""
    return rank(stored) >= Rank(generation, Phase.TERMINAL)


def job_key(job_id: str) -> str:
    """The Redis key of a job, by its job id (`stt_common.tenants.job_id`)."""
    return KEY_PREFIX + job_id


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
        self._confirm = redis.register_script(_CONFIRM)
        self._discard = redis.register_script(_DISCARD)
        self.index = JobIndex(redis, ttl, KEY_PREFIX)

    def expire_at(self, record: JobRecord) -> int:
        return int(record.updated_at.timestamp()) + self.ttl

    async def get(self, job_id: str) -> JobRecord | None:
        data = await self.redis.hget(job_key(job_id), "data")
        return JobRecord.model_validate_json(data) if data else None

    async def create(self, record: JobRecord, ttl: int) -> tuple[JobRecord | None, str]:
        """Store `record` unless the job exists. Returns (existing record or None, data written)."""
        created = await self._create_record(record, ttl, [job_key(record.job_id)])
        return created.existing, created.written

    async def create_if_ready(
        self, record: JobRecord, ttl: int, *, epoch_key: str, pending_event_key: str
    ) -> Created:
        """`create`, in the same round trip as the two reads a submit needs: it raises
        StoreRestoring, writing nothing, unless the store's epoch marker `epoch_key` says READY
        (a store that lost its data cannot tell a finished job from a new one); and with an
        existing job it returns the value at `pending_event_key` (the API's unconfirmed submit
        event, `stt_api.unconfirmed`). One Lua call, so nothing can change in between."""
        keys = [job_key(record.job_id), epoch_key, pending_event_key]
        return await self._create_record(record, ttl, keys)

    async def _create_record(self, record: JobRecord, ttl: int, keys: list[str]) -> Created:
        data = record.model_dump_json(exclude_none=True)
        found = await self._create(
            keys=keys, args=[data, _ms(record.updated_at), ttl, record.generation]
        )
        if found == NOT_READY:
            raise StoreRestoring(RESTORING_DETAIL)
        if not found:
            return Created(None, data, None)
        existing, pending = [*found, None][:2]
        return Created(JobRecord.model_validate_json(existing), data, pending or None)

    async def confirm(self, record: JobRecord) -> None:
        """Extend a freshly created record to its full TTL once its event is durable, and add it
        to the job lists (`stt_common.job_index`): one script call, one round trip (a pipeline
        holding a script would ask SCRIPT EXISTS first, a second one)."""
        keys, args = self.index.entry(record, self.expire_at(record), time.time())
        await self._confirm(keys=[*keys, job_key(record.job_id)], args=args)

    async def discard(self, job_id: str, data: str) -> None:
        await self._discard(keys=[job_key(job_id)], args=[data])

    async def apply(self, record: JobRecord, now: float) -> ApplyOutcome:
        """Store `record` if the ordering rule allows it (see the module docstring)."""
        (outcome,) = await self.apply_many([record], now)
        return outcome

    async def apply_many(self, records: Sequence[JobRecord], now: float) -> list[ApplyOutcome]:
        """`apply` each record, in order, in one round trip (a pipeline keeps the order)."""
        if not records:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                generation, phase = rank(record)
                args: list[str | int | float] = [
                    generation,
                    int(phase),
                    _ms(record.updated_at),
                    record.model_dump_json(exclude_none=True),
                    self.expire_at(record),
                    int(now),
                    record.attempt,
                    -1 if record.progress is None else record.progress,
                ]
                await self._apply(keys=[job_key(record.job_id)], args=args, client=pipe)
                await self.index.add(record, self.expire_at(record), pipe, now)
            # Two replies per record: the ordering rule's outcome, then the index's.
            results = (await pipe.execute())[::2]
        return [ApplyOutcome(r.decode() if isinstance(r, bytes) else r) for r in results]

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

    async def list_jobs(
        self,
        tenant: str | None,
        *,
        since: datetime | None = None,
        after: Cursor | None = None,
        limit: int = 100,
        accept: Callable[[JobRecord], bool] | None = None,
    ) -> Page:
        """A page of a job list (see `stt_common.job_index`); `tenant` None: every tenant."""
        return await self.index.page(
            self.get_many, tenant, since=since, after=after, limit=limit, accept=accept
        )
