"""Per-API-key rate limit over a sliding minute, shared by API processes through Redis, with no
Redis round trip on the request path.

Each process counts requests in memory and adds them to the current minute's Redis counter at
most every FLUSH_SECONDS per key (INCRBY + EXPIRE and a read of the previous minute's counter, in
one MULTI, off the request path). A request is decided from the totals Redis returned last plus
what this process has counted since. The last 60 s are estimated as the previous minute's count
weighted by the share of it still inside those 60 s, plus the current minute's count, so a client
cannot fit twice the limit around a minute boundary. The price of not asking Redis every time:
several processes together may let through up to FLUSH_SECONDS of each one's traffic beyond the
limit. Refused requests are not counted, so a client that waits as told gets through.

The Redis key holds a hash of the API key, never the key itself. When Redis cannot answer, each
process goes on limiting what it sees itself (and says so in the log now and then).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
FLUSH_SECONDS = 0.1
CHECK_TIMEOUT = 1.0
WARN_EVERY = 30.0


@dataclass
class _Window:
    """One key's counts for one minute, as this process knows them."""

    number: int  # minutes since the epoch
    pending: int = 0  # counted here, not yet added in Redis
    current: int = 0  # this minute's total in Redis after the last flush
    previous: int = 0  # the previous minute's total
    flushed_at: float = -math.inf
    flushing: bool = False


class RateLimiter:
    def __init__(self, redis: Redis, per_minute: int, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.flush_seconds = flush_seconds
        self._windows: dict[str, _Window] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = -math.inf

    @staticmethod
    def redis_key(identity: str, window: int) -> str:
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return f"stt:rate:{digest}:{window}"

    def check(self, identity: str, now: float | None = None) -> int | None:
        """Count one request; None when it is allowed, else seconds until one would be."""
        if self.per_minute <= 0:
            return None
        now = time.time() if now is None else now
        number = int(now // WINDOW_SECONDS)
        window = self._windows.get(identity)
        if window is None or window.number != number:
            window = self._roll(identity, window, number)
        into = (now - number * WINDOW_SECONDS) / WINDOW_SECONDS  # share of this minute gone by
        earlier = window.previous * (1.0 - into)
        over = earlier + window.current + window.pending + 1 - self.per_minute
        if over > 0:
            self._maybe_flush(identity, window)  # others may have stopped: refresh the totals
            return self._wait(window, into, earlier, over)
        window.pending += 1
        self._maybe_flush(identity, window)
        return None

    def _wait(self, window: _Window, into: float, earlier: float, over: float) -> int:
        to_next_minute = (1.0 - into) * WINDOW_SECONDS
        wait = to_next_minute
        if window.previous > 0 and over <= earlier:  # the previous minute's share fades linearly
            wait = min(wait, over / window.previous * WINDOW_SECONDS)
        return max(1, math.ceil(round(wait, 3)))  # round: float noise must not add a second

    def _roll(self, identity: str, old: _Window | None, number: int) -> _Window:
        if len(self._windows) > 10_000:  # identities gone quiet (clients without keys)
            self._windows = {k: w for k, w in self._windows.items() if w.number >= number - 1}
        if old is not None and old.pending and not old.flushing:
            self._spawn(identity, old)  # what this process counted last minute still counts
        last = old.current + old.pending if old is not None and old.number == number - 1 else 0
        window = _Window(number, previous=last)
        self._windows[identity] = window
        return window

    def _maybe_flush(self, identity: str, window: _Window) -> None:
        if not window.flushing and time.monotonic() - window.flushed_at >= self.flush_seconds:
            self._spawn(identity, window)

    def _spawn(self, identity: str, window: _Window) -> None:
        window.flushing = True
        task = asyncio.get_running_loop().create_task(self._flush(identity, window))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, identity: str, window: _Window) -> None:
        sent = window.pending
        key = self.redis_key(identity, window.number)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                # INCRBY and EXPIRE in one MULTI: a crash between them cannot leave a key forever.
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incrby(key, sent)
                    pipe.expire(key, WINDOW_SECONDS * 2)
                    pipe.get(self.redis_key(identity, window.number - 1))
                    current, _, previous = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn(exc)
        else:
            window.pending -= sent
            window.current = int(current)
            window.previous = int(previous or 0)
        finally:
            window.flushing = False
            window.flushed_at = time.monotonic()

    async def drain(self) -> None:
        """Wait for the flushes in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at >= WARN_EVERY:  # once in a while, not per request
            self._warned_at = time.monotonic()
            log.warning(
                "rate limit counted per process only, Redis unavailable (%s)",
                exc.__class__.__name__,
            )
