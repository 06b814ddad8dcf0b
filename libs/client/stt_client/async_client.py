"""`AsyncSttClient`: the asyncio client, call for call the same as `SttClient`."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from stt_client import _core
from stt_client._core import Priority, Task
from stt_client.errors import JobFailed, JobNotFound
from stt_client.models import Job, Status, SubtitleFormat

T = TypeVar("T")


class _AsyncFileBody:
    """`_core.FileBody` for the async transport: read in a thread, from the start on each try."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def __aiter__(self) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(self.path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, _core.UPLOAD_CHUNK):
                yield chunk
        finally:
            file.close()


class AsyncSttClient:
    """Asyncio client of the stt HTTP API. Use it with `async with`, or await `close()`.

    `max_retries` bounds the retries of one call on connection errors, 5xx and 429 (with
    exponential backoff); `wait` retries those until its own deadline instead.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        max_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_retries = max_retries
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncSttClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        request_id: str,
        read: Callable[[httpx.Response], T],
        method: str,
        path: str,
        until: float | None = None,
        **options: Any,
    ) -> T:
        retry = _core.Retry(None if until else self.max_retries, until)
        while True:
            try:
                response = await self._http.request(method, path, **options)
                return read(_core.check(response, request_id))
            except _core.RETRY_ON as exc:
                await asyncio.sleep(retry.delay(exc))

    async def submit(
        self,
        request_id: str,
        media_url: str,
        language: str = "vi",
        *,
        prompt: str | None = None,
        hotwords: str | None = None,
        task: Task = "transcribe",
        word_timestamps: bool = False,
        metadata: dict[str, str] | None = None,
        priority: Priority | None = None,
    ) -> Job:
        """Submit a job; a known `request_id` returns that job's state (idempotent).

        `prompt`: text the model reads before the audio (names, spelling); `hotwords`: words
        it should expect; `task="translate"`: the English translation of the speech;
        `word_timestamps`: each segment lists its words with times; `metadata`: your own
        context (string values, at most 16 keys and 2 KiB), echoed in polls, lists and
        webhooks; `priority`: `"interactive"` (someone waits) or `"batch"` (backfills: they run
        when no interactive work waits, with a guaranteed share), default the key's tenant's."""
        options = _core.JobOptions(prompt, hotwords, task, word_timestamps)
        body = _core.submit_body(request_id, media_url, language, options, metadata, priority)
        return await self._call(request_id, _core.job_of, "POST", _core.API_PATH, json=body)

    async def upload(self, path: str | os.PathLike[str]) -> str:
        """Store a local file in the server's media bucket (`POST /api/v1/uploads`); its
        `minio://` URL, to pass to `submit` or `transcribe`. Retried from the first byte."""
        file = Path(path)
        size = (await asyncio.to_thread(file.stat)).st_size
        body = _AsyncFileBody(file)
        options = _core.upload_options(body, file, size, self._http.timeout)
        try:
            return await self._call(
                file.name, _core.media_url_of, "POST", _core.UPLOAD_PATH, **options
            )
        except JobNotFound:
            raise _core.no_uploads() from None

    async def get(self, request_id: str) -> Job:
        return await self._call(request_id, _core.job_of, "GET", f"{_core.API_PATH}/{request_id}")

    async def subtitles(self, request_id: str, format: SubtitleFormat = "srt") -> str:
        """The transcript of a COMPLETED job as SubRip, WebVTT or plain text."""
        path = f"{_core.API_PATH}/{request_id}"
        return await self._call(
            request_id, lambda r: r.text, "GET", path, params={"format": format}
        )

    async def delete(self, request_id: str) -> None:
        """Forget the job; a transcriber working on it stops at its next safe point."""
        await self._call(request_id, lambda r: None, "DELETE", f"{_core.API_PATH}/{request_id}")

    async def list_jobs(
        self,
        *,
        status: Status | None = None,
        since: datetime | None = None,
        metadata: tuple[str, str] | None = None,
        include_transcript: bool = False,
        page_size: int = _core.LIST_PAGE,
        tenant: str | None = None,
    ) -> AsyncIterator[Job]:
        """The caller's jobs, newest first, following the pages (`GET /api/v1/transcribe`).

        `status`: only PROCESSING, COMPLETED or FAILED; `since`: only submitted at or after it;
        `metadata`: only jobs whose metadata holds this (key, value); `include_transcript`:
        also transcription and segments; `tenant`: with an admin key, another tenant ("*":
        every tenant). Jobs submitted while iterating are not listed; none is listed twice."""
        query = _core.ListQuery(status, since, metadata, include_transcript, page_size, tenant)
        cursor: str | None = None
        while True:
            params = query.params(cursor)
            page = await self._call("", _core.page_of, "GET", _core.API_PATH, params=params)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def wait(
        self,
        request_id: str,
        deadline: float = 600.0,
        on_update: Callable[[Job], object] | None = None,
        max_interval: float | None = None,
    ) -> Job:
        """Poll until the job is COMPLETED (returned) or FAILED (`JobFailed`), at most
        `deadline` seconds (`DeadlineExceeded`), pacing polls by the server's hints.
        `on_update` sees every state polled (stage, progress), the last one included;
        `max_interval` caps the seconds between polls (for a progress display)."""
        until = time.monotonic() + deadline
        path = f"{_core.API_PATH}/{request_id}"
        last: Job | None = None
        while True:
            try:
                params = _core.poll_params(until - time.monotonic())
                job, hint = await self._call(
                    request_id, _core.hinted_job, "GET", path, until=until, params=params
                )
            except _core.OutOfTime:
                raise _core.deadline_error(request_id, deadline, last) from None
            last = job
            if on_update is not None:
                on_update(job)
            if job.status == "COMPLETED":
                return job
            if job.status == "FAILED":
                raise JobFailed(job)
            left = until - time.monotonic()
            if left <= 0:
                raise _core.deadline_error(request_id, deadline, last)
            await asyncio.sleep(min(hint, left, max_interval or hint))

    async def transcribe(
        self,
        media_url: str,
        request_id: str | None = None,
        language: str = "vi",
        deadline: float = 600.0,
        *,
        prompt: str | None = None,
        hotwords: str | None = None,
        task: Task = "transcribe",
        word_timestamps: bool = False,
        metadata: dict[str, str] | None = None,
        priority: Priority | None = None,
    ) -> Job:
        """Submit and wait (the options as in `submit`). Without `request_id`, one is derived
        from the URL, language and options, so calling again after a crash or timeout picks up
        the same job."""
        options = _core.JobOptions(prompt, hotwords, task, word_timestamps)
        request_id = request_id or _core.default_request_id(media_url, language, options)
        await self.submit(
            request_id,
            media_url,
            language,
            prompt=prompt,
            hotwords=hotwords,
            task=task,
            word_timestamps=word_timestamps,
            metadata=metadata,
            priority=priority,
        )
        return await self.wait(request_id, deadline)
