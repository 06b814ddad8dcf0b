"""The one exception a job can fail with, carrying what the client is told and whether to retry."""

from __future__ import annotations

from typing import Final

from stt_common.messages import ErrorType

# Every `error_type` a failed job can carry (the metrics start each at zero).
ERROR_TYPES: Final = frozenset(str(t) for t in ErrorType)


class JobError(Exception):
    """A job failure a person can act on.

    `transient` is True when the same job may succeed later (connection errors, timeouts,
    HTTP 5xx/408/429, S3 server errors), so the worker retries it instead of failing the job.
    `detail` is for the worker's log only and never reaches the client (such as the internal
    address a refused URL resolved to).
    """

    def __init__(
        self,
        message: str,
        error_type: ErrorType | str,
        transient: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = ErrorType(error_type)  # an unknown code is a bug: fail loudly
        self.transient = transient
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[JobError], tuple[str, str, bool, str | None]]:
        return (JobError, (self.message, self.error_type, self.transient, self.detail))

    def __repr__(self) -> str:
        return (
            f"JobError({self.message!r}, error_type={self.error_type!r}, "
            f"transient={self.transient!r})"
        )


DOWNLOAD_FAILED: Final = "Failed to download audio file"


def too_large(max_bytes: int) -> JobError:
    mb = format(max_bytes / (1024 * 1024), ".4g")
    return JobError(f"Media is larger than the limit of {mb} MB (STT_FETCH_MAX_BYTES)", "too_large")


def empty_media() -> JobError:
    return JobError("Media file is empty", "empty_media")
