"""Does Redis still hold what the projector put there? The store's epoch marker.

Redis is a projection of the compacted status topic. When it loses its data (a restart without
persistence, a failover to an empty replica, FLUSHALL) every key goes, and the marker
`stt:epoch:{status topic}` with them. So:

* marker missing (LOST): the store cannot be trusted to say "no such job". The API answers a
  poll or delete of a job it does not find, and every submit, with 503 + Retry-After (a resubmit
  of a finished job must not start it again), never 404. The projector sees it too, claims the
  restore and rebuilds from the status topic while it keeps projecting new events;
* RESTORING: a projector is rebuilding (it renews `until`; one whose lease ran out is taken over
  by another projector): the API answers as for LOST;
* READY: the rebuild is done (or there was nothing to rebuild): a missing job is a 404.

The marker is keyed by the status topic, so deployments (and test stacks) that share a Redis
but not their topics keep separate markers. A first start of the system is a LOST store whose
status topic is empty: the projector marks it READY at once.
"""

from __future__ import annotations

import enum
import secrets
import time

from redis.asyncio import Redis

EPOCH_PREFIX = "stt:epoch:"
RESTORE_RETRY_AFTER = "2"  # seconds a client is told to wait while the store is restored
RESTORING_DETAIL = "Job store is being restored from Kafka; retry later"

# KEYS[1] marker; ARGV: owner, until (ms), now (ms). 1 when the restore is now ours.
_BEGIN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'ready' then return 0 end
if state == 'restoring' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
   and tonumber(redis.call('HGET', KEYS[1], 'until')) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'restoring', 'owner', ARGV[1], 'until', ARGV[2])
return 1
"""

# KEYS[1] marker; ARGV: owner, epoch id, now (ms). 1 when marked ready.
_FINISH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ready', 'epoch', ARGV[2], 'since', ARGV[3])
redis.call('HDEL', KEYS[1], 'owner', 'until')
return 1
"""


class StoreRestoring(Exception):
    """Redis lost its data and is not yet rebuilt: "not found" would be a guess. The API answers
    it with 503 and Retry-After (RESTORE_RETRY_AFTER)."""


class StoreState(enum.StrEnum):
    READY = "ready"  # a missing job is really missing
    RESTORING = "restoring"  # a projector is rebuilding from the status topic
    LOST = "lost"  # the marker is gone: Redis lost its data and nobody is rebuilding yet


def epoch_key(status_topic: str) -> str:
    return EPOCH_PREFIX + status_topic


def _ms() -> int:
    return int(time.time() * 1000)


async def state(redis: Redis, status_topic: str) -> StoreState:
    found = await redis.hget(epoch_key(status_topic), "state")
    if found is None:
        return StoreState.LOST
    text = found.decode() if isinstance(found, bytes) else str(found)
    return StoreState.READY if text == StoreState.READY else StoreState.RESTORING


async def require_ready(redis: Redis, status_topic: str) -> None:
    """Raise StoreRestoring unless the store is READY (see the module docstring)."""
    if await state(redis, status_topic) is not StoreState.READY:
        raise StoreRestoring(RESTORING_DETAIL)


async def begin_restore(redis: Redis, status_topic: str, owner: str, lease: float) -> bool:
    """Take (or renew) the restore unless the store is READY or another projector's lease on
    the restore is still live."""
    now = _ms()
    args: list[str | int] = [owner, now + int(lease * 1000), now]
    return bool(await redis.eval(_BEGIN, 1, epoch_key(status_topic), *args))


async def finish_restore(redis: Redis, status_topic: str, owner: str) -> bool:
    """Mark the store READY with a new epoch id, if the restore is still `owner`'s."""
    args: list[str | int] = [owner, secrets.token_hex(8), _ms()]
    return bool(await redis.eval(_FINISH, 1, epoch_key(status_topic), *args))


async def mark_ready(redis: Redis, status_topic: str) -> None:
    """Declare the store complete without a rebuild (a test's API without a projector)."""
    await redis.hset(
        epoch_key(status_topic),
        mapping={"state": "ready", "epoch": secrets.token_hex(8), "since": _ms()},
    )
