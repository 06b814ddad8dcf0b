"""Liveness and readiness, both without a key."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from redis.exceptions import ResponseError

from stt_api.deps import JobStoreDep, PublisherDep

router = APIRouter(tags=["health"])
READY_PROBE_KEY = "stt:ready-probe"
READY_PROBE_TTL = 10  # seconds: the probe key never accumulates


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Redis accepts writes and Kafka is reachable")
async def ready(
    response: Response, store: JobStoreDep, publisher: PublisherDep
) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        # A write, not a ping: a Redis that is full (maxmemory) or read-only answers pings
        # while every submit fails.
        await store.redis.set(READY_PROBE_KEY, "1", ex=READY_PROBE_TTL)
        checks["redis"] = "ok"
    except ResponseError as exc:
        checks["redis"] = f"refuses writes: {type(exc).__name__}"  # OutOfMemoryError, ReadOnlyError
    except Exception as exc:
        checks["redis"] = f"unreachable: {exc.__class__.__name__}"
    if not publisher.started:
        await publisher.start()
    checks["kafka"] = "ok" if publisher.started else "unreachable"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if ok else "not ready", **checks}
