"""`POST /api/v1/uploads`: store a local file in the media bucket, to submit it as `minio://`.

The raw body is the file (no multipart form: nothing to parse, and it streams straight through).
The body-limit middleware exempts this path; the limit here is STT_MAX_UPLOAD_BYTES. Refusals
keep the connection open (no `Connection: close`), so the server reads and drops the rest of the
body and the client, still writing it, gets to read the answer instead of a reset.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import uuid
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query, Request, status
from starlette.requests import ClientDisconnect

from stt_api.deps import MediaStoreDep, SettingsDep, UploadSlotsDep
from stt_api.media_store import MediaStore, StoreUnavailable, TooLarge, TooSlow, UploadPace
from stt_api.upload_slots import Refusal
from stt_common.messages import ErrorResponse, UploadResponse, ValidationErrorResponse
from stt_common.settings import ApiSettings

log = logging.getLogger(__name__)
PATH = "/api/v1/uploads"
MAX_NAME = 100
# Raw bytes are all we store, but a form or JSON body means the client got the API wrong.
_ACCEPTED_TYPES = ("application/octet-stream", "audio/", "video/")
BUSY_RETRY_AFTER: Final = "5"


def _identity(request: Request) -> str:
    key = request.headers.get("x-api-key")  # already checked by the guard
    return key or f"addr:{request.client.host if request.client else '-'}"


router = APIRouter(
    prefix=PATH,
    tags=["uploads"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key"},
        413: {"model": ErrorResponse, "description": "File over STT_MAX_UPLOAD_BYTES"},
        422: {"model": ValidationErrorResponse, "description": "filename too long"},
        429: {"model": ErrorResponse, "description": "Rate limit; see Retry-After"},
    },
)


def safe_name(filename: str | None) -> str:
    """The last path component, reduced to ASCII letters, digits, '.', '_' and '-'."""
    base = re.split(r"[\\/]", filename or "")[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name)[-MAX_NAME:]  # keeps the extension
    return cleaned.strip("._-") or "upload"


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"File is larger than the upload limit of {limit} bytes (STT_MAX_UPLOAD_BYTES)",
    )


def _unavailable(exc: StoreUnavailable) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, f"Upload not stored: {exc}; retry later"
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResponse,
    summary="Upload a media file (the raw body); submit the answer's media_url",
    responses={
        400: {"model": ErrorResponse, "description": "Empty or interrupted body"},
        408: {
            "model": ErrorResponse,
            "description": "Body sent too slowly (STT_UPLOAD_MIN_BYTES_PER_SECOND, "
            "STT_UPLOAD_TIMEOUT)",
        },
        415: {"model": ErrorResponse, "description": "Not application/octet-stream"},
        503: {
            "model": ErrorResponse,
            "description": "Object storage or its bucket unavailable, or STT_UPLOADS_MAX_ACTIVE "
            "uploads in progress",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            # Non-empty (an empty body is a 400), and any of the accepted types.
            "content": {
                kind: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                for kind in ("application/octet-stream", "audio/*", "video/*")
            },
        }
    },
)
async def upload(
    request: Request,
    store: MediaStoreDep,
    slots: UploadSlotsDep,
    settings: SettingsDep,
    filename: Annotated[
        str | None, Query(max_length=255, description="Original name (kept, made safe)")
    ] = None,
) -> UploadResponse:
    """Streams the body into the bucket under `uploads/<uuid>/<filename>` and answers its
    `minio://` URL, which `POST /api/v1/transcribe` accepts as `media_url`."""
    limit = settings.api.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    kind = request.headers.get("content-type", "application/octet-stream").lower()
    if not kind.startswith(_ACCEPTED_TYPES):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "Send the file's bytes as the body with Content-Type: application/octet-stream",
        )
    with slots.hold(_identity(request)) as refused:
        if refused is Refusal.KEY_BUSY:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"{slots.per_key} uploads of this API key are in progress already "
                "(STT_UPLOADS_PER_KEY); retry when one has finished",
                headers={"Retry-After": BUSY_RETRY_AFTER},
            )
        if refused is Refusal.PROCESS_FULL:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"{slots.max_active} uploads are in progress already (STT_UPLOADS_MAX_ACTIVE); "
                "retry later",
                headers={"Retry-After": BUSY_RETRY_AFTER},
            )
        return await _store_body(request, store, settings.api, filename)


async def _store_body(
    request: Request, store: MediaStore, settings: ApiSettings, filename: str | None
) -> UploadResponse:
    limit = settings.max_upload_bytes
    try:
        # Before reading any of the body: a client that sent `Expect: 100-continue` (curl does for
        # large files) gets this 503, or the 413 above, without sending the file.
        await store.check()
    except StoreUnavailable as exc:
        log.warning("upload refused: %s", exc)
        raise _unavailable(exc) from exc
    key = f"uploads/{uuid.uuid4().hex}/{safe_name(filename)}"
    chunks = request.stream()
    pace = UploadPace(settings)  # the upload's clock starts once the store has answered
    try:
        first = b""
        while not first:  # an empty body is refused before an object is created
            chunk = await pace.next(chunks)
            if chunk is None:
                break
            first = chunk
        if not first:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "The body is empty: send the file")
        size = await store.put(key, first, chunks, limit, pace)
    except TooLarge:
        raise _too_large(limit) from None
    except TooSlow as exc:
        log.info("upload cut off: %s", exc, extra={"key": key})
        raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, f"Upload cut off: {exc}") from None
    except StoreUnavailable as exc:
        log.warning("upload failed: %s", exc, extra={"key": key})
        raise _unavailable(exc) from exc
    except (ClientDisconnect, TimeoutError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "The body stopped before its end") from exc
    log.info("upload stored", extra={"key": key, "size": size})
    return UploadResponse(media_url=f"minio://{store.bucket}/{key}", size=size)
