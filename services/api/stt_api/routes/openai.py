"""OpenAI's audio API on top of the job queue: `POST /v1/audio/transcriptions`,
`POST /v1/audio/translations`, `GET /v1/models`.

A request takes the path of every job: the uploaded file is streamed into the media bucket
(under `uploads/`, like `POST /api/v1/uploads`), a submit event is published (`jobs.enqueue`),
and the request then waits for the job's COMPLETED or FAILED state in Redis, at most
STT_OPENAI_WAIT_SECONDS. Past that the answer is a 504 that names the job (`openai-<hex>`),
which stays pollable on `GET /api/v1/transcribe/{id}`. Every answer after the submit carries
the job's id in `x-request-id`.

* Bodies are bounded by STT_MAX_UPLOAD_BYTES (plus a little for the form), counted as they
  arrive; the body-limit middleware exempts these paths.
* Errors here use OpenAI's body (`openai_format.error_body`), never `{"detail"}`; the
  answers that are not worth repeating (504, a FAILED job) carry `x-should-retry: false`, which
  the official SDKs honour instead of uploading again.
* `model` may be anything: every value is served by the transcribers' model (`/v1/models`),
  so clients that send `whisper-1` work.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from stt_api import jobs, openai_docs
from stt_api.auth import DEVELOPMENT_CALLER, SCOPE_KEY, Caller
from stt_api.deps import Wiring, WiringDep
from stt_api.media_store import MediaStore, StoreUnavailable, TooLarge, UploadPace
from stt_api.openai_form import read_fields
from stt_api.openai_format import (
    ErrorType,
    Granularity,
    OpenAIError,
    ResponseFormat,
    model_list,
    model_object,
    render,
)
from stt_api.routes.uploads import safe_name
from stt_api.submit_events import PublishError
from stt_common import tenants
from stt_common.job_store import JobStore
from stt_common.messages import (
    JobRecord,
    JobStatus,
    Source,
    SubmitEvent,
    Task,
)

log = logging.getLogger(__name__)
TRANSCRIPTIONS: Final = "/v1/audio/transcriptions"
TRANSLATIONS: Final = "/v1/audio/translations"
PATHS: Final = frozenset({TRANSCRIPTIONS, TRANSLATIONS})
FORM_OVERHEAD: Final = 64 * 1024  # boundaries and the small fields around the file
MAX_FIELD_BYTES: Final = 16 * 1024  # any one field other than the file
MAX_FIELDS: Final = 32
READ_CHUNK: Final = 1024 * 1024
WAIT_FIRST: Final = 0.1  # seconds between Redis reads while waiting, growing to WAIT_MAX
WAIT_MAX: Final = 0.5
# FAILED jobs whose cause is the file or the request: a 400, not a 500.
CLIENT_ERRORS: Final = frozenset(
    {"invalid_media", "empty_media", "too_long", "too_large", "unsupported_language"}
)
NO_RETRY: Final = {"x-should-retry": "false"}


async def _answer_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenAIError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(OpenAIError, _answer_error)
    app.include_router(router)


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        413,
        f"The file is larger than the upload limit of {limit} bytes (STT_MAX_UPLOAD_BYTES)",
        param="file",
        code="file_too_large",
    )


def _unavailable(why: str) -> OpenAIError:
    return OpenAIError(503, f"{why}; retry later", ErrorType.SERVER, code="service_unavailable")


class _BodyTooLarge(Exception):
    pass


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive`, raising _BodyTooLarge once more than `limit` body bytes have arrived."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge()
        return message

    return counted


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(READ_CHUNK):
        yield chunk


async def _store_file(
    store: MediaStore, upload: UploadFile, limit: int, pace: UploadPace
) -> str:
    """The `minio://` URL of the form's file, streamed from its spool into the bucket (the form
    is already received, so `pace` only bounds the local reads)."""
    first = await upload.read(READ_CHUNK)
    if not first:
        raise OpenAIError(400, "The file is empty", param="file")
    key = f"uploads/{uuid.uuid4().hex}/{safe_name(upload.filename)}"
    try:
        size = await store.put(key, first, _chunks(upload), limit, pace)
    except TooLarge:
        raise _too_large(limit) from None
    except StoreUnavailable as exc:
        log.warning("upload failed: %s", exc, extra={"key": key})
        raise _unavailable(f"The file was not stored: {exc}") from exc
    log.info("upload stored", extra={"key": key, "size": size})
    return f"minio://{store.bucket}/{key}"


async def _read_form(request: Request, limit: int) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise OpenAIError(
            400, "Send a multipart/form-data body with the audio as 'file'", param="file"
        )
    counted = Request(request.scope, _counting(request.receive, limit + FORM_OVERHEAD))
    try:
        return await counted.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except _BodyTooLarge:
        raise _too_large(limit) from None
    except HTTPException as exc:  # Starlette's words for a malformed multipart body
        raise OpenAIError(400, f"The form could not be read: {exc.detail}") from None
    except ClientDisconnect as exc:
        raise OpenAIError(400, "The body stopped before its end") from exc


async def _outcome(
    store: JobStore, job_id: str, wait: float, gone: Callable[[], Awaitable[bool]]
) -> JobRecord | None:
    """The job's record once COMPLETED or FAILED, or as it is after `wait` seconds or when the
    client has gone away (`gone`: no one is left to answer; the job goes on); None when the job
    is gone (deleted through the native API, or expired)."""
    deadline = time.monotonic() + wait
    step = WAIT_FIRST
    while True:
        record = await store.get(job_id)
        left = deadline - time.monotonic()
        if record is None or record.status is not JobStatus.PROCESSING or left <= 0:
            return record
        if await gone():
            log.info(
                "client left before the result; the job goes on", extra={"request_id": job_id}
            )
            return record
        await asyncio.sleep(min(step, left))
        step = min(WAIT_MAX, step * 1.5)


def _failure(record: JobRecord | None, request_id: str, wait: float) -> OpenAIError:
    headers = {**NO_RETRY, "x-request-id": request_id}
    if record is None:
        return OpenAIError(
            500,
            f"Job {request_id} was deleted or expired",
            ErrorType.SERVER,
            None,
            "job_gone",
            headers,
        )
    if record.status is JobStatus.PROCESSING:
        return OpenAIError(
            504,
            f"Job {request_id} is still running after {wait:g} s (STT_OPENAI_WAIT_SECONDS); "
            f"its result will be at GET /api/v1/transcribe/{request_id}",
            ErrorType.TIMEOUT,
            None,
            "job_timeout",
            headers,
        )
    client_side = record.error_type in CLIENT_ERRORS
    return OpenAIError(
        400 if client_side else 500,
        record.error or "Transcription failed",
        ErrorType.INVALID_REQUEST if client_side else ErrorType.SERVER,
        "file" if client_side else None,
        record.error_type,
        headers,
    )


async def _handle(request: Request, task: Task, wiring: Wiring) -> Response:
    settings = wiring.settings.api
    limit = settings.max_upload_bytes
    store = wiring.media_store
    form = await _read_form(request, limit)
    try:
        asked = read_fields(form, task)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise OpenAIError(400, "'file' is required: the audio as a form file", param="file")
        try:
            # After the form, so that a bad field costs no write to the bucket.
            await store.check()
        except StoreUnavailable as exc:
            raise _unavailable(f"The file was not stored: {exc}") from exc
        media_url = await _store_file(
            store, upload, limit, UploadPace(settings)
        )
    finally:
        await form.close()
    request_id = f"openai-{uuid.uuid4().hex}"
    caller: Caller = request.scope.get(SCOPE_KEY, DEVELOPMENT_CALLER)  # set by the guard
    event = SubmitEvent(
        request_id=request_id,
        tenant=tenants.as_field(caller.tenant),
        media_url=media_url,
        language=asked.language,
        source=Source.API,
        prompt=asked.prompt,
        hotwords=asked.hotwords,
        task=task,
        word_timestamps=Granularity.WORD in asked.granularities
        and asked.response_format is ResponseFormat.VERBOSE_JSON,
        segment_details=asked.response_format is ResponseFormat.VERBOSE_JSON,
        temperature=asked.temperature,
        priority=settings.lane_of(caller.tenant),
    )
    try:
        await jobs.enqueue(
            wiring.job_store,
            wiring.publisher,
            event,
            pending_ttl=settings.submit_ttl_before_publish,
        )
    except PublishError as exc:
        log.warning("submit refused: %s", exc, extra={"request_id": request_id})
        raise _unavailable(str(exc)) from exc
    wait = settings.openai_wait_seconds
    record = await _outcome(wiring.job_store, event.job_id, wait, request.is_disconnected)
    if record is None or record.status is not JobStatus.COMPLETED:
        raise _failure(record, request_id, wait)
    body, media_type = render(record, asked.response_format, task, asked.granularities)
    headers = {"x-request-id": request_id}
    if isinstance(body, str):
        return Response(body, media_type=media_type, headers=headers)
    return JSONResponse(body, headers=headers)


router = APIRouter(prefix="/v1", tags=["openai"])


@router.post(
    "/audio/transcriptions",
    summary="OpenAI-compatible: transcribe a file and wait for the text",
    openapi_extra=openai_docs.form_schema(Task.TRANSCRIBE),
    responses=openai_docs.RESPONSES,
    response_class=Response,
)
async def transcriptions(request: Request, wiring: WiringDep) -> Response:
    return await _handle(request, Task.TRANSCRIBE, wiring)


@router.post(
    "/audio/translations",
    summary="OpenAI-compatible: translate the speech of a file into English text",
    openapi_extra=openai_docs.form_schema(Task.TRANSLATE),
    responses=openai_docs.RESPONSES,
    response_class=Response,
)
async def translations(request: Request, wiring: WiringDep) -> Response:
    return await _handle(request, Task.TRANSLATE, wiring)


@router.get("/models", summary="OpenAI-compatible: the model the transcribers serve")
async def models(wiring: WiringDep) -> dict[str, Any]:
    return model_list(wiring.served_model)


@router.get(
    "/models/{model}",
    summary="OpenAI-compatible: one model",
    responses={404: {**openai_docs.ERROR, "description": "Not the served model"}},
)
async def model(model: str, wiring: WiringDep) -> dict[str, Any]:
    served = wiring.served_model
    if model != served:
        raise OpenAIError(
            404,
            f"The model '{model}' does not exist; this server serves '{served}'",
            param="model",
            code="model_not_found",
        )
    return model_object(served)
