"""What the sync and async clients share: answers to jobs or errors, poll hints, retry delays."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from stt_client.errors import (
    ApiError,
    AuthenticationError,
    DeadlineExceeded,
    JobNotFound,
    Unavailable,
)
from stt_client.models import Job, JobPage, Status

API_PATH: Final = "/api/v1/transcribe"
UPLOAD_PATH: Final = "/api/v1/uploads"
UPLOAD_CHUNK: Final = 1024 * 1024
UPLOAD_MIN_TIMEOUT: Final = 60.0  # the answer comes after the last part is in the bucket
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_POLL: Final = 2.0
MIN_POLL: Final = 0.2
MAX_POLL: Final = 30.0


class Transient(Exception):
    """A failure worth retrying (connection error, 5xx, 429), with the server's Retry-After."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OutOfTime(Exception):
    """The caller's deadline passed while retrying."""


Task = Literal["transcribe", "translate"]
Priority = Literal["interactive", "batch"]  # the job's lane; None: the tenant's default


@dataclass(frozen=True)
class JobOptions:
    """The decoding options of a submit; the defaults are the server's."""

    prompt: str | None = None
    hotwords: str | None = None
    task: Task = "transcribe"
    word_timestamps: bool = False

    def fields(self) -> dict[str, Any]:
        """Only what differs from the defaults: a server without these options accepts it."""
        return {k: v for k, v in vars(self).items() if v != getattr(DEFAULT_OPTIONS, k)}


DEFAULT_OPTIONS: Final = JobOptions()


def default_request_id(media_url: str, language: str, options: JobOptions = DEFAULT_OPTIONS) -> str:
    """The same URL, language and options give the same id, so a retried `transcribe` never
    runs twice (and a translation of a file is not its transcription). Without options, the id
    is the one earlier versions derived."""
    key = f"{language}\n{media_url}"
    if options != DEFAULT_OPTIONS:
        key += "\n" + "\n".join(f"{k}={v}" for k, v in sorted(options.fields().items()))
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"sdk-{digest[:40]}"


def submit_body(
    request_id: str,
    media_url: str,
    language: str,
    options: JobOptions,
    metadata: dict[str, str] | None = None,
    priority: Priority | None = None,
) -> dict[str, Any]:
    body = {"request_id": request_id, "media_url": media_url, "language": language}
    body |= {"priority": priority} if priority else {}  # absent: a server before lanes accepts it
    return body | options.fields() | ({"metadata": metadata} if metadata else {})


LIST_PAGE: Final = 100


@dataclass(frozen=True)
class ListQuery:
    """The filters of `list_jobs`; `params` adds the cursor of the page wanted."""

    status: Status | None = None
    since: datetime | None = None
    metadata: tuple[str, str] | None = None  # (key, value)
    include_transcript: bool = False
    page_size: int = LIST_PAGE
    tenant: str | None = None  # admin keys only; "*" for every tenant

    def params(self, cursor: str | None) -> dict[str, str]:
        params = {"limit": str(self.page_size)}
        if self.status is not None:
            params["status"] = self.status
        if self.since is not None:
            since = self.since if self.since.tzinfo else self.since.astimezone()
            params["since"] = since.isoformat()
        if self.metadata is not None:
            params[f"metadata.{self.metadata[0]}"] = self.metadata[1]
        if self.include_transcript:
            params["include"] = "transcript"
        if self.tenant is not None:
            params["tenant"] = self.tenant
        if cursor is not None:
            params["cursor"] = cursor
        return params


def page_of(response: httpx.Response) -> JobPage:
    return JobPage.model_validate_json(response.content)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else (response.text[:200] or response.reason_phrase)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def check(response: httpx.Response, request_id: str) -> httpx.Response:
    """The response if it is a success; else the matching error (Transient when retryable)."""
    code = response.status_code
    if code < 300:
        return response
    if code == 401:
        raise AuthenticationError(_detail(response))
    if code == 404:
        raise JobNotFound(request_id)
    if code in RETRYABLE_STATUS:
        raise Transient(f"HTTP {code}: {_detail(response)}", _retry_after(response))
    raise ApiError(code, _detail(response))


def job_of(response: httpx.Response) -> Job:
    return Job.model_validate_json(response.content)


def poll_hint(job: Job, response: httpx.Response) -> float:
    """Seconds to wait before the next poll: the server's estimate, else Retry-After, else 2."""
    hint = job.poll_after_seconds or _retry_after(response) or DEFAULT_POLL
    return min(MAX_POLL, max(MIN_POLL, hint))


SERVER_HOLD_MAX = 8.0  # the most a server holds a plain poll (STT_POLL_HOLD_SECONDS <= 8)


def poll_params(left: float) -> dict[str, str]:
    """Query of a poll with `left` seconds to the caller's deadline: when the server's hold
    window could outlast it, an explicit `wait` bounds the hold by the deadline."""
    if left >= SERVER_HOLD_MAX:
        return {}
    return {"wait": f"{max(0.0, left):.2f}"}


def hinted_job(response: httpx.Response) -> tuple[Job, float]:
    job = job_of(response)
    return job, poll_hint(job, response)


class Retry:
    """Exponential backoff with jitter for one call, bounded by a count or by a deadline."""

    def __init__(
        self, max_retries: int | None, until: float | None, base: float = 0.5, cap: float = 10.0
    ) -> None:
        self.max_retries = max_retries
        self.until = until  # time.monotonic() value
        self.base = base
        self.cap = cap
        self.attempt = 0

    def delay(self, exc: Exception) -> float:
        """Seconds to sleep before the next try, or raise: Unavailable, or OutOfTime."""
        self.attempt += 1
        if self.max_retries is not None and self.attempt > self.max_retries:
            raise Unavailable(f"gave up after {self.attempt} tries: {exc}") from exc
        wait = min(self.cap, self.base * 2.0 ** (self.attempt - 1)) * random.uniform(0.5, 1.0)
        if isinstance(exc, Transient) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        if self.until is not None:
            left = self.until - time.monotonic()
            if left <= 0:
                raise OutOfTime() from exc
            wait = min(wait, left)
        return wait


def deadline_error(request_id: str, deadline: float, last: Job | None) -> DeadlineExceeded:
    return DeadlineExceeded(request_id, deadline, last)


RETRY_ON: Final = (httpx.TransportError, Transient)


class FileBody:
    """A file as a request body that starts again from its first byte on every try (retries)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as file:
            while chunk := file.read(UPLOAD_CHUNK):
                yield chunk


def upload_options(body: object, path: Path, size: int, timeout: httpx.Timeout) -> dict[str, Any]:
    """The request options of an upload: the raw bytes, declared length, a patient timeout."""
    return {
        "content": body,
        "params": {"filename": path.name},
        "headers": {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        "timeout": httpx.Timeout(
            connect=timeout.connect,
            read=max(timeout.read or 0.0, UPLOAD_MIN_TIMEOUT),
            write=max(timeout.write or 0.0, UPLOAD_MIN_TIMEOUT),
            pool=timeout.pool,
        ),
    }


def media_url_of(response: httpx.Response) -> str:
    url = response.json().get("media_url")
    if not isinstance(url, str):
        raise ApiError(response.status_code, "upload answer without media_url")
    return url


def no_uploads() -> ApiError:
    return ApiError(404, f"no {UPLOAD_PATH} on this server (a version without uploads?)")
