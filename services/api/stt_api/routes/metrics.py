"""`/metrics`: Prometheus text format, without a key (keep it off the public listener).

Each scrape first pings Redis (at most PROBE_SECONDS) and sets `stt_dependency_up{dependency=
"redis"}`, so the "Redis unreachable" alert needs nothing that calls `/ready`. Kafka's
reachability comes from the projector's `stt_kafka_exporter_up` (a real round trip to the
broker); the API's producer reconnects on its own and has no cheap probe.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from stt_api.deps import JobStoreDep
from stt_common import metrics as stt_metrics
from stt_common.job_store import JobStore

router = APIRouter(tags=["health"])
PROBE_SECONDS = 1.0


@router.get("/metrics", summary="Prometheus metrics (stt_*)", response_class=Response)
async def metrics(store: JobStoreDep) -> Response:
    await _probe_redis(store)
    return Response(stt_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _probe_redis(store: JobStore) -> None:
    try:
        await asyncio.wait_for(store.redis.ping(), PROBE_SECONDS)
        up = 1
    except Exception:  # unreachable, refused, timed out: all "down" for the alert
        up = 0
    stt_metrics.DEPENDENCY_UP.labels("redis").set(up)
