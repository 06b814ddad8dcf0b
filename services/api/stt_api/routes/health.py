"""Liveness and readiness, both without a key."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from stt_api.deps import JobStoreDep, PublisherDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Redis and Kafka are reachable")
async def ready(
    response: Response, store: JobStoreDep, publisher: PublisherDep
) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        await store.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {exc.__class__.__name__}"
    if not publisher.started:
        await publisher.start()
    checks["kafka"] = "ok" if publisher.started else "unreachable"
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if ok else "not ready", **checks}
