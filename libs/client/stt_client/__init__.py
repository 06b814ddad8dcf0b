"""Python client of the stt speech-to-text API (needs only httpx and pydantic).

The seed's integration example, in three lines::

    from stt_client import SttClient
    with SttClient("http://stt-host:8000", api_key="KEY") as stt:
        print(stt.transcribe("http://minio-host/bucket/audio.mp3", language="vi").transcription)

`transcribe` = `submit` + `wait`. `wait` follows the server's poll hints (`poll_after_seconds`,
`Retry-After`), retries connection errors and 5xx/429 with exponential backoff, and raises
`JobFailed` (with the server's `error`), `JobNotFound`, `DeadlineExceeded` or
`AuthenticationError`. `list_jobs(status=..., since=...)` iterates over the caller's jobs, page
after page. `AsyncSttClient` offers the same calls for asyncio.

`verify_webhook(body, request.headers["X-STT-Signature"], secret)` checks a webhook's signature.
"""

from __future__ import annotations

from stt_client.async_client import AsyncSttClient
from stt_client.errors import (
    ApiError,
    AuthenticationError,
    DeadlineExceeded,
    JobFailed,
    JobNotFound,
    SttError,
    Unavailable,
)
from stt_client.models import Job, JobPage, RemovedSegment, Segment, Word
from stt_client.sync_client import SttClient
from stt_client.webhooks import SIGNATURE_HEADER, verify_webhook

__all__ = [
    "SIGNATURE_HEADER",
    "ApiError",
    "AsyncSttClient",
    "AuthenticationError",
    "DeadlineExceeded",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobPage",
    "RemovedSegment",
    "Segment",
    "SttClient",
    "SttError",
    "Unavailable",
    "Word",
    "verify_webhook",
]
