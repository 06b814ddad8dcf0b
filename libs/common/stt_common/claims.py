"""At most one transcription per job generation: a claim with a lease, in Redis.

The job record (`stt:job:*`) says a job is finished only once the projector has caught up, so
duplicates of a submit event (an upstream producer sending twice, an API publish retried, a
replayed record) would each be transcribed while the projector lags. The claim does not lag:
a transcriber writes it itself before it starts a job.

`stt:claim:{job_id}:{generation}` (the job id: `stt_common.tenants.job_id`) holds one of
  * ``run {token} {attempt}``: a worker runs the job; the key expires after the lease
    (`STT_WORKER_CLAIM_LEASE`) unless that worker renews it (every third of the lease), so a
    crashed or frozen worker's job is free again within one lease;
  * ``next {attempt}``: the job went to a retry topic; only an event of that attempt or later
    may take it (an older copy of the submit event is stale);
  * ``done``: the generation's outcome is published; every later copy is skipped. Kept for
    REDIS_JOB_TTL, as long as the job itself.
Every change is one Lua script, so two workers cannot both take a claim. A claim that is no
longer ours (our lease ran out and another worker took the job) is never overwritten.

Redis unreachable: the job runs without a claim (Kafka stays the source of truth, and a job
must not wait on its projection); the ordering rule then keeps the first result.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stt_common import tasks
from stt_common.messages import SubmitEvent

log = logging.getLogger(__name__)
CLAIM_PREFIX = "stt:claim:"
DEFAULT_LEASE = 30.0  # seconds; STT_WORKER_CLAIM_LEASE
DONE = "done"

# KEYS[1] claim; ARGV: value to set ("run token attempt"), attempt, lease (ms)
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == 'done' then return 'done' end
if cur then
  local kind, a = string.match(cur, '^(%a+) (%S+)')
  if kind == 'run' then return 'running' end
  if kind == 'next' and tonumber(ARGV[2]) < tonumber(a) then return 'stale' end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 'acquired'
"""

# KEYS[1] claim; ARGV: our value, lease (ms). 1 when renewed, 0 when the claim is not ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS[1] claim; ARGV: our value, new value ("done" / "next N" / "" to release), ttl (s).
# Applied while the claim is ours or has lapsed with nobody else taking it.
_SETTLE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class ClaimOutcome(enum.StrEnum):
    ACQUIRED = "acquired"  # ours: run the job
    RUNNING = "running"  # another worker holds a live lease: wait, then look again
    DONE = "done"  # this generation's outcome is out: skip the copy
    STALE = "stale"  # the job moved on to a later attempt: skip the copy
    UNCHECKED = "unchecked"  # Redis did not answer: run without a claim


def claim_key(job_id: str, generation: int) -> str:
    return f"{CLAIM_PREFIX}{job_id}:{generation}"


@dataclass
class Claim:
    """One worker's hold on one job generation (or, UNCHECKED, the lack of one)."""

    key: str
    value: str
    outcome: ClaimOutcome
    # A renewal found the claim taken by another worker (ours lapsed: frozen, partitioned).
    # Logged only: stopping the job then is the fencing of issue 13 item 6.
    lost: bool = field(default=False)

    @property
    def granted(self) -> bool:
        return self.outcome in (ClaimOutcome.ACQUIRED, ClaimOutcome.UNCHECKED)


class Claims:
    """The claims of one worker process. `lease` in seconds; `done_ttl` = REDIS_JOB_TTL."""

    def __init__(self, redis: Redis, owner: str, lease: float, done_ttl: int) -> None:
        self.redis = redis
        self.owner = owner
        self.lease_ms = max(1, int(lease * 1000))
        self.done_ttl = done_ttl
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._settle = redis.register_script(_SETTLE)
        self.held: dict[str, Claim] = {}  # by job id: the claims this worker holds now

    async def acquire(self, job: SubmitEvent) -> Claim:
        key = claim_key(job.job_id, job.generation)
        value = f"run {self.owner}/{uuid.uuid4().hex[:12]} {job.attempt}"
        try:
            answer = await self._acquire(keys=[key], args=[value, job.attempt, self.lease_ms])
        except RedisError as exc:
            log.warning(
                "claim not checked (%s); running without one", exc,
                extra={"request_id": job.request_id},
            )  # fmt: skip
            return Claim(key, value, ClaimOutcome.UNCHECKED)
        claim = Claim(key, value, ClaimOutcome(_text(answer)))
        if claim.outcome is ClaimOutcome.ACQUIRED:
            self.held[job.job_id] = claim
        return claim

    @contextlib.asynccontextmanager
    async def renewing(self, claim: Claim) -> AsyncIterator[Claim]:
        """Renew `claim` every third of the lease while the block runs."""
        if claim.outcome is not ClaimOutcome.ACQUIRED:
            yield claim
            return
        task = asyncio.create_task(self._keep(claim))
        try:
            yield claim
        finally:
            await tasks.stop(task)  # bounded: a renewal left running would hold the job for ever

    async def _keep(self, claim: Claim) -> None:
        while True:
            if tasks.cancel_requested():  # a stop that the Redis client swallowed (tasks.py)
                raise asyncio.CancelledError
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                ours = await self._renew(keys=[claim.key], args=[claim.value, self.lease_ms])
            except RedisError as exc:
                log.warning("claim not renewed (%s)", exc)
                continue
            if not ours:
                claim.lost = True
                log.warning("claim %s was taken by another worker", claim.key)
                return

    async def finish(self, job_id: str) -> None:
        """The outcome is published: every later copy of this generation is skipped."""
        await self._settle_held(job_id, DONE, self.done_ttl)

    async def hand_on(self, job_id: str, next_attempt: int) -> None:
        """The job went to a retry topic: only attempt `next_attempt` or later may take it."""
        await self._settle_held(job_id, f"next {next_attempt}", self.done_ttl)

    async def release(self, job_id: str) -> None:
        """The job is handed back unfinished (shutdown, outcome not published): free it now."""
        await self._settle_held(job_id, "", 0)

    async def _settle_held(self, job_id: str, value: str, ttl: int) -> None:
        claim = self.held.pop(job_id, None)
        if claim is None:
            return
        try:
            await self._settle(keys=[claim.key], args=[claim.value, value, ttl])
        except RedisError as exc:  # the lease runs out by itself
            log.warning("claim not settled (%s)", exc, extra={"job_id": job_id})


def _text(answer: bytes | str) -> str:
    return answer.decode() if isinstance(answer, bytes) else answer
