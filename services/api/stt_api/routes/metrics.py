"""`/metrics`: Prometheus text format, without a key (keep it off the public listener)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from stt_common import metrics as stt_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics (stt_*)", response_class=Response)
async def metrics() -> Response:
    return Response(stt_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
