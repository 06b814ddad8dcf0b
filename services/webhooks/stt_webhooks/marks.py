"""`stt:webhook:{job id}` (`stt_common.tenants`) = the newest generation whose webhook is done
(sent or dead-lettered), so a duplicate terminal result (a worker that lost its partition redid
the job) or a record read again after a restart is not POSTed twice. Redis is only a shortcut
here: when it is down, the webhook goes out (at least once beats never).
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

log = logging.getLogger(__name__)
KEY_PREFIX = "stt:webhook:"

# KEYS[1]; ARGV: generation, ttl. Never lowers the stored generation.
_MARK = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"""


class Marks:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._mark = redis.register_script(_MARK)

    async def done(self, request_id: str, generation: int) -> bool:
        try:
            value = await self.redis.get(KEY_PREFIX + request_id)
        except Exception as exc:
            log.warning("webhook mark not read (%s); delivering", exc)
            return False
        return value is not None and int(value) >= generation

    async def mark(self, request_id: str, generation: int) -> None:
        try:
            await self._mark(keys=[KEY_PREFIX + request_id], args=[generation, self.ttl])
        except Exception as exc:
            log.warning("webhook mark not written (%s)", exc, extra={"request_id": request_id})
