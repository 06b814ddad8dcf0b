"""`/api/v1/transcribe`: submit a job, poll it. The seed's contract, field for field."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from stt_api.auth import require_api_key
from stt_api.submit_events import PublishError, SubmitPublisher
from stt_common.job_store import JobStore
from stt_common.messages import (
    SUBMITTED_MESSAGE,
    ErrorResponse,
    JobRecord,
    JobResponse,
    JobStatus,
    RequestId,
    Source,
    SubmitEvent,
    TranscribeRequest,
)

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/v1/transcribe",
    tags=["transcribe"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key"}},
)

POLL_AFTER_SECONDS = 2


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.job_store
    return store


def _publisher(request: Request) -> SubmitPublisher:
    publisher: SubmitPublisher = request.app.state.publisher
    return publisher


def _respond(response: Response, body: JobResponse) -> JobResponse:
    if body.status is JobStatus.PROCESSING:
        response.headers["Retry-After"] = str(POLL_AFTER_SECONDS)
    return body


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobResponse,
    response_model_exclude_none=True,
    summary="Submit a job (idempotent by request_id)",
    responses={503: {"model": ErrorResponse, "description": "Kafka did not take the job"}},
)
async def submit(
    body: TranscribeRequest,
    request: Request,
    response: Response,
    store: Annotated[JobStore, Depends(_store)],
    publisher: Annotated[SubmitPublisher, Depends(_publisher)],
) -> JobResponse:
    """Accept a job and answer at once. A known `request_id` returns that job's current status
    and starts nothing new."""
    event = SubmitEvent(
        request_id=body.request_id,
        media_url=body.media_url,
        language=body.language,
        source=Source.API,
    )
    record = JobRecord.from_submit(event)
    # Short TTL until Kafka has the event, so a crash in between leaves nothing that never ends.
    existing, written = await store.create(record, ttl=request.app.state.pending_ttl)
    if existing is not None:
        return _respond(response, JobResponse.from_record(existing))
    try:
        await publisher.publish(event)
    except PublishError as exc:
        await store.discard(record.request_id, written)
        log.warning("submit refused: %s", exc, extra={"request_id": record.request_id})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{exc}; retry later") from exc
    await store.confirm(record)
    log.info("job accepted", extra={"request_id": record.request_id})
    return _respond(response, JobResponse.from_record(record, SUBMITTED_MESSAGE))


@router.get(
    "/{request_id}",
    response_model=JobResponse,
    response_model_exclude_none=True,
    summary="Poll a job",
    responses={404: {"model": ErrorResponse, "description": "Unknown or expired job"}},
)
async def poll(
    request_id: Annotated[RequestId, Path()],
    response: Response,
    store: Annotated[JobStore, Depends(_store)],
) -> JobResponse:
    record = await store.get(request_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job not found: {request_id}")
    return _respond(response, JobResponse.from_record(record))
