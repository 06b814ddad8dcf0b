"""Streams an upload's body into the media bucket without holding the file in memory, and
without a thread ever waiting on the client.

The body is read on the event loop into a buffer of one multipart part (`PART_SIZE`); only a
full part (or the whole of a small file) goes to a thread, which writes it to the store and is
free again. A client that sends one byte every 20 s therefore holds no thread, only its buffer,
and `UploadPace` cuts it off: below STT_UPLOAD_MIN_BYTES_PER_SECOND on average (judged after
STT_UPLOAD_MIN_RATE_GRACE seconds), or past STT_UPLOAD_TIMEOUT in all. The size limit is checked
as the bytes arrive, whatever Content-Length said; a cut-off multipart upload is aborted.

The multipart calls are the MinIO client's own (`_create_multipart_upload`, `_upload_part`,
`_complete_multipart_upload`, `_abort_multipart_upload`: what its `put_object` runs inside),
because its public `put_object` wants a blocking stream and so a thread for the whole upload.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from minio.datatypes import Part
from minio.error import MinioException, S3Error

from stt_common import media_bucket
from stt_common.settings import ApiSettings, MinioSettings

log = logging.getLogger(__name__)
PART_SIZE = 8 * 1024 * 1024  # multipart part size (S3's minimum is 5 MiB)
CHUNK_WAIT = 60.0  # seconds the upload waits for the client's next chunk, at most
PARALLEL_WRITES = 16  # own threads writing ready parts: never starved by the default executor
T = TypeVar("T")


class TooLarge(Exception):
    """The body passed the upload limit."""


class TooSlow(Exception):
    """The client sent the body too slowly (minimum rate) or for too long (deadline)."""


class StoreUnavailable(Exception):
    """MinIO is unreachable, refused the write, or the bucket does not exist."""


class UploadPace:
    """Waits for each chunk of the body within what the limits leave; raises TooSlow."""

    def __init__(self, settings: ApiSettings) -> None:
        self.min_rate = settings.upload_min_bytes_per_second
        self.grace = settings.upload_min_rate_grace
        self.timeout = settings.upload_timeout
        self.started = time.monotonic()
        self.total = 0

    async def next(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The next chunk, None at the end of the body."""
        elapsed = time.monotonic() - self.started
        # The nearest of the three limits, and what to say when it is the one reached: decided
        # here, not re-derived after the wait (a timer may fire a hair before its deadline).
        limits = [
            (CHUNK_WAIT, f"no data for {CHUNK_WAIT:g} s"),
            (
                self.timeout - elapsed,
                f"not finished within {self.timeout:g} s (STT_UPLOAD_TIMEOUT)",
            ),
        ]
        if self.min_rate:
            # The latest moment the next byte may come and keep the average above the floor.
            limits.append((
                max(self.grace, (self.total + 1) / self.min_rate) - elapsed,
                f"slower than {self.min_rate} bytes/s on average (STT_UPLOAD_MIN_BYTES_PER_SECOND)",
            ))
        wait, why = min(limits, key=lambda limit: limit[0])
        try:
            chunk = await asyncio.wait_for(anext(chunks, None), max(0.0, wait))
        except TimeoutError:
            raise TooSlow(why) from None
        if chunk is not None:
            self.total += len(chunk)
        return chunk


class MediaStore:
    def __init__(self, settings: MinioSettings) -> None:
        self.bucket = settings.bucket
        # Short timeouts: a client waiting on an upload gets a 503 soon.
        self.client = media_bucket.client(settings, 5.0, 60.0, connections=PARALLEL_WRITES)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            PARALLEL_WRITES, thread_name_prefix="upload"
        )

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        """A blocking store call in a writing thread; store errors become StoreUnavailable."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)
        except Exception as exc:  # S3 answers, urllib3's connection errors, ...
            raise StoreUnavailable(_describe(exc)) from exc

    def _check(self) -> None:
        try:
            exists = self.client.bucket_exists(self.bucket)
        except Exception as exc:
            raise StoreUnavailable(_describe(exc)) from exc
        if not exists:
            raise StoreUnavailable(f"bucket {self.bucket} does not exist")

    async def check(self) -> None:
        """Raise StoreUnavailable unless the bucket answers: before any body is read. On the
        default executor, so that busy writing threads never delay another client's check."""
        await asyncio.to_thread(self._check)

    def _put_whole(self, key: str, data: bytes) -> None:
        self.client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            length=len(data),
            content_type="application/octet-stream",
        )

    def _create(self, key: str) -> str:
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": "application/octet-stream"
        }
        return self.client._create_multipart_upload(self.bucket, key, headers)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> Part:
        etag = self.client._upload_part(self.bucket, key, data, None, upload_id, number)
        return Part(number, etag)

    def _complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        self.client._complete_multipart_upload(self.bucket, key, upload_id, parts)

    def _abort(self, key: str, upload_id: str) -> None:
        self.client._abort_multipart_upload(self.bucket, key, upload_id)

    async def put(
        self, key: str, first: bytes, rest: AsyncIterator[bytes], limit: int, pace: UploadPace
    ) -> int:
        """Store `first` + `rest` as `key`; its size. Raises TooLarge, TooSlow,
        StoreUnavailable, or what reading the body raised (a client that went away)."""
        buffer = bytearray(first)
        size = len(first)
        upload_id: str | None = None
        parts: list[Part] = []
        try:
            while True:
                if size > limit:
                    raise TooLarge()
                if len(buffer) >= PART_SIZE:  # a full part: written while the client waits
                    if upload_id is None:
                        upload_id = await self._run(self._create, key)
                    data = bytes(buffer[:PART_SIZE])
                    del buffer[:PART_SIZE]
                    parts.append(
                        await self._run(self._upload_part, key, upload_id, len(parts) + 1, data)
                    )
                    continue
                chunk = await pace.next(rest)
                if chunk is None:
                    break
                size += len(chunk)
                buffer += chunk
            if upload_id is None:
                await self._run(self._put_whole, key, bytes(buffer))
                return size
            if buffer:
                parts.append(
                    await self._run(
                        self._upload_part, key, upload_id, len(parts) + 1, bytes(buffer)
                    )
                )
            await self._run(self._complete, key, upload_id, parts)
            return size
        except BaseException:
            if upload_id is not None:
                await self._abort_quietly(key, upload_id)
            raise

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            await asyncio.shield(self._run(self._abort, key, upload_id))
        except (StoreUnavailable, asyncio.CancelledError) as exc:  # the store's own expiry rules
            log.warning("multipart upload of %s not aborted: %s", key, exc)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, S3Error):
        return f"object storage refused the write ({exc.code})"
    if isinstance(exc, MinioException):
        return f"object storage failed ({exc.__class__.__name__})"
    return f"object storage unreachable ({exc.__class__.__name__})"
