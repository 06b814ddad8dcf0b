"""What the client raises. Every error is an `SttError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stt_client.models import Job


class SttError(Exception):
    """Base of every error this package raises."""


class AuthenticationError(SttError):
    """401: the API key is missing or wrong."""


class JobNotFound(SttError):
    """404: no such job, or it has expired (REDIS_JOB_TTL) or been deleted."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"Job not found: {request_id}")
        self.request_id = request_id


class JobFailed(SttError):
    """The job ended FAILED; `error` is the server's reason, `job` its last state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error = job.error or "Transcription failed"
        self.error_type = job.error_type
        super().__init__(self.error)


class DeadlineExceeded(SttError):
    """`wait` ran out of time; `job` is the last state seen (None if none was)."""

    def __init__(self, request_id: str, deadline: float, job: Job | None) -> None:
        status = job.status if job is not None else "unknown"
        super().__init__(f"{request_id} still {status} after {deadline:g}s")
        self.request_id = request_id
        self.job = job


class ApiError(SttError):
    """Any other answer the client cannot use: a 4xx, or a 5xx that outlasted the retries."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class Unavailable(SttError):
    """The API could not be reached, or kept answering 5xx/429, through every retry."""
