"""`/api/v1/transcribe`: submit a job, poll it. The seed's contract, field for field.

Every job belongs to the tenant of the key that submitted it (`auth.Caller`): a caller sees only
its own tenant's jobs, and another tenant's job answers exactly as an unknown one (404). An admin
key may name any tenant with `?tenant=`. Job lists are in `job_lists`."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from stt_api import job_lists, jobs, polling, subtitles
from stt_api.deps import CallerDep, JobStoreDep, PublisherDep, WiringDep
from stt_api.submit_events import PublishError
from stt_common import cancellation, media_bucket, store_epoch, tenants
from stt_common.job_store import job_key
from stt_common.messages import (
    SUBMITTED_MESSAGE,
    ErrorResponse,
    JobList,
    JobRecord,
    JobResponse,
    JobStatus,
    RequestId,
    Source,
    SubmitEvent,
    TranscribeRequest,
    ValidationErrorResponse,
    utcnow,
)

log = logging.getLogger(__name__)
MAX_WAIT = 30.0  # bounds how long one long poll holds a connection
SUBMIT_RETRY_AFTER = "2"  # seconds before a submit Kafka did not take is worth trying again
router = APIRouter(
    prefix="/api/v1/transcribe",
    tags=["transcribe"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key"},
        413: {"model": ErrorResponse, "description": "Request body over STT_MAX_BODY_BYTES"},
        422: {"model": ValidationErrorResponse, "description": "A field breaks its rule"},
        429: {"model": ErrorResponse, "description": "Rate limit; see Retry-After"},
        503: {
            "model": ErrorResponse,
            "description": "Redis or Kafka unavailable, or Redis being restored; see Retry-After",
        },
    },
)


def _respond(
    record: JobRecord,
    advisor: polling.PollAdvisor,
    message: str | None = None,
    status_code: int = status.HTTP_200_OK,
) -> Response:
    body = JobResponse.from_record(record, message)
    headers = None
    advisor.observe(record)  # learns from a completed job once, however often it is polled
    wait = advisor.poll_after(record)
    if wait is not None:
        body.poll_after_seconds = wait
        headers = {"Retry-After": polling.retry_after_header(wait)}
    # Serialised here, once: the body is a JobResponse by construction, and FastAPI's own
    # response_model pass would validate and encode it a second time (measured in bench/).
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code,
        headers,
        media_type="application/json",
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobResponse,
    response_model_exclude_none=True,
    summary="Submit a job (idempotent by request_id)",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "Kafka did not take the job: X-Submit-Outcome says `refused` (no "
            "job) or `unknown` (resubmit with the same request_id; it never makes two jobs)",
        }
    },
)
async def submit(body: TranscribeRequest, wiring: WiringDep, caller: CallerDep) -> Response:
    """Accept a job and answer at once. A known `request_id` returns that job's current status
    and starts nothing new."""
    # The wiring as one dependency, not one per object: FastAPI solves each dependency on every
    # request, and on the two hottest routes that cost more than the route's own work.
    settings = wiring.settings
    if not media_bucket.readable(body.media_url, settings.minio):
        # A 422 like any other field rule, the same for every refused bucket (see media_bucket).
        error = {"loc": ("body", "media_url"), "msg": media_bucket.BUCKET_REFUSED}
        raise RequestValidationError([error | {"type": "value_error"}])
    event = SubmitEvent(
        request_id=body.request_id,
        media_url=body.media_url,
        language=body.language,
        source=Source.API,
        callback_url=body.callback_url,
        prompt=body.prompt,
        hotwords=body.hotwords,
        task=body.task,
        word_timestamps=body.word_timestamps,
        tenant=tenants.as_field(caller.tenant),
        metadata=body.metadata,
        priority=body.priority or settings.api.lane_of(caller.tenant),
    )
    try:
        record, new = await jobs.enqueue(
            wiring.job_store,
            wiring.publisher,
            event,
            pending_ttl=settings.api.submit_ttl_before_publish,
        )
    except PublishError as exc:
        log.warning("submit not confirmed: %s", exc, extra={"request_id": event.request_id})
        outcome, detail = jobs.describe_failure(exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail,
            headers={"Retry-After": SUBMIT_RETRY_AFTER, jobs.OUTCOME_HEADER: outcome},
        ) from exc
    except jobs.StoreUnavailable as exc:  # Redis failed: the same 503, with the outcome
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Job store temporarily unavailable; retry later (resubmit with the same request_id)",
            headers={"Retry-After": SUBMIT_RETRY_AFTER, jobs.OUTCOME_HEADER: exc.outcome},
        ) from exc
    except store_epoch.StoreRestoring as exc:  # checked before anything is published
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            store_epoch.RESTORING_DETAIL,
            headers={
                "Retry-After": store_epoch.RESTORE_RETRY_AFTER,
                jobs.OUTCOME_HEADER: "refused",
            },
        ) from exc
    if not new:
        return _respond(record, wiring.poll_advisor, status_code=202)
    return _respond(record, wiring.poll_advisor, SUBMITTED_MESSAGE, status_code=202)


@router.get(
    "/{request_id}",
    response_model=JobResponse,
    response_model_exclude_none=True,
    summary="Poll a job; format=srt|vtt|txt gives the transcript of a completed one",
    responses={
        200: {"content": {t.split(";")[0]: {} for t in subtitles.MEDIA_TYPES.values()}},
        404: {"model": ErrorResponse, "description": "Unknown or expired job"},
        409: {"model": ErrorResponse, "description": "srt/vtt/txt asked before COMPLETED"},
    },
)
async def poll(
    request_id: Annotated[RequestId, Path()],
    wiring: WiringDep,
    caller: CallerDep,
    format: Annotated[subtitles.Format, Query(description="json (default), srt, vtt or txt")] = (
        "json"
    ),
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=MAX_WAIT,
            description="Long poll: hold up to this many seconds while PROCESSING; 0 answers "
            "at once. Without it, a poll is held (up to STT_POLL_HOLD_SECONDS) only when the "
            "job's ETA is that close",
        ),
    ] = None,
    tenant: job_lists.TenantQuery = None,
) -> Response:
    settings = wiring.settings  # one dependency for the wiring, as in `submit`
    job_id = tenants.job_id(job_lists.owner(caller, tenant), request_id)
    record = await wiring.job_store.get(job_id)
    if record is not None and record.status is JobStatus.PROCESSING:
        hold = (
            wait
            if wait is not None
            else polling.hold_seconds(record, settings.api.poll_hold_seconds)
        )
        if hold > 0:
            # Sleeps holding no Redis connection; one shared read per step wakes it (long_poll.py).
            record = await wiring.long_polls.wait(job_id, hold)
    if record is None:
        # Not found is only true while Redis holds all it should (503 during a restore).
        await store_epoch.require_ready(wiring.job_store.redis, settings.kafka.topic_status)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job not found: {request_id}")
    if format == "json":
        return _respond(record, wiring.poll_advisor)
    if record.status is not JobStatus.COMPLETED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Job is {record.status}: format={format} is available once it is COMPLETED",
        )
    text = subtitles.render(format, record.segments, record.transcription, record.duration)
    return Response(text, media_type=subtitles.MEDIA_TYPES[format])


@router.delete(
    "/{request_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a job and cancel it at its next safe point",
    responses={404: {"model": ErrorResponse, "description": "Unknown or expired job"}},
)
async def delete(
    request_id: Annotated[RequestId, Path()],
    store: JobStoreDep,
    publisher: PublisherDep,
    caller: CallerDep,
    tenant: job_lists.TenantQuery = None,
) -> Response:
    """The job disappears at once (polls answer 404). A transcriber still working on it stops
    before its next step and its late events are dropped (see `stt_common.cancellation`)."""
    job_id = tenants.job_id(job_lists.owner(caller, tenant), request_id)
    if not await store.redis.exists(job_key(job_id)):
        await store_epoch.require_ready(store.redis, publisher.settings.topic_status)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Job not found: {request_id}")
    # The marker first, so that no event projected after the delete can bring the job back.
    await cancellation.mark(store.redis, job_id, utcnow(), store.ttl)
    await store.delete(job_id)
    try:
        await publisher.forget(job_id)
    except PublishError as exc:  # Redis already forgot it; only a later rebuild could restore it
        log.warning(
            "deleted job kept in the status topic: %s", exc, extra={"request_id": request_id}
        )
    log.info("job deleted", extra={"request_id": request_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "",
    response_model=JobList,
    response_model_exclude_none=True,
    summary="List the caller's jobs, newest first (cursor pagination)",
    responses={403: {"model": ErrorResponse, "description": "tenant= without an admin key"}},
    openapi_extra={"parameters": [job_lists.METADATA_PARAMETER]},
)
async def list_jobs(
    request: Request,
    store: JobStoreDep,
    caller: CallerDep,
    status_: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status")
    ] = None,
    since: Annotated[
        job_lists.Since | None, Query(description="Only jobs submitted at or after this time")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=job_lists.MAX_LIMIT, description="Jobs per page")] = (
        job_lists.DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the page before")
    ] = None,
    include: Annotated[
        job_lists.Include | None,
        Query(description="'transcript' adds transcription, segments and removed_segments"),
    ] = None,
    tenant: job_lists.TenantQuery = None,
) -> Response:
    """The caller's jobs that are still held (REDIS_JOB_TTL), each as a poll answers it, with
    `submitted_at`. A page never repeats a job of an earlier page, and skips none, while jobs
    go on completing (a replayed job moves to the top). With an admin key, `tenant=NAME` lists
    that tenant and `tenant=*` every tenant."""
    page = await job_lists.page(
        store,
        caller,
        tenant=tenant,
        status=status_,
        since=since,
        limit=limit,
        cursor=cursor,
        metadata=job_lists.metadata_filter(request.query_params.multi_items()),
        transcript=include is not None,
    )
    return Response(page.model_dump_json(exclude_none=True), media_type="application/json")
