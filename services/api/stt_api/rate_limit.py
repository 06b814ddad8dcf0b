"""Per-API-key rate limit: a fixed one-minute window counted in Redis, shared by API processes.

The Redis key holds a hash of the API key, never the key itself. When Redis cannot answer, the
request goes through (fail open): refusing every client because the counter is unreachable
would turn a Redis hiccup into an outage, and the job store reports the real failure anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stt_api.auth import require_api_key

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
CHECK_TIMEOUT = 1.0  # the limit is advisory; it must not add seconds to a request
WARN_EVERY = 30.0


class RateLimiter:
    def __init__(self, redis: Redis, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self._warned_at = -math.inf

    @staticmethod
    def redis_key(identity: str, window: int) -> str:
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return f"stt:rate:{digest}:{window}"

    async def retry_after(self, identity: str, now: float | None = None) -> int | None:
        """Count one request; None when it is allowed, else seconds until the window resets."""
        if self.per_minute <= 0:
            return None
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        key = self.redis_key(identity, window)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                # INCR and EXPIRE in one MULTI: a crash between them cannot leave a key forever.
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS * 2)
                    count, _ = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)
            return None
        if int(count) <= self.per_minute:
            return None
        return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at >= WARN_EVERY:  # once in a while, not per request
            self._warned_at = time.monotonic()
            log.warning("rate limit not checked, Redis unavailable (%s)", exc.__class__.__name__)


async def enforce_rate_limit(
    request: Request, api_key: Annotated[str | None, Depends(require_api_key)]
) -> None:
    """Route dependency (after authentication, so a wrong key is 401, not counted)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    # Without keys (development mode) the client address is the identity.
    identity = api_key or f"addr:{request.client.host if request.client else '-'}"
    wait = await limiter.retry_after(identity)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Rate limit exceeded: {limiter.per_minute} requests per minute per API key",
            headers={"Retry-After": str(wait)},
        )
