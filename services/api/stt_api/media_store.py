"""Streams an upload's body into the media bucket without holding the file in memory.

The MinIO client is blocking, so `put_object` runs in a thread and pulls the body through
`_BodyReader`, which fetches each chunk from the event loop as the thread needs it: at most one
multipart part (`PART_SIZE`) is in memory per upload, and the size limit is checked as the bytes
arrive, whatever Content-Length said.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncIterator
from typing import BinaryIO, cast

from minio.error import MinioException, S3Error

from stt_common import media_bucket
from stt_common.settings import MinioSettings

log = logging.getLogger(__name__)
PART_SIZE = 8 * 1024 * 1024  # multipart part size (S3's minimum is 5 MiB)
CHUNK_WAIT = 60.0  # seconds the upload waits for the client's next chunk
PARALLEL_UPLOADS = 16  # own threads: long uploads must not starve the default executor


class TooLarge(Exception):
    """The body passed the upload limit."""


class StoreUnavailable(Exception):
    """MinIO is unreachable, refused the write, or the bucket does not exist."""


class _BodyReader:
    """A blocking `read(n)` over the request body, for the thread that runs `put_object`."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        loop: asyncio.AbstractEventLoop,
        first: bytes,
        limit: int,
    ) -> None:
        self.chunks = chunks
        self.loop = loop
        self.pending = bytearray(first)
        self.size = len(first)
        self.limit = limit
        self.done = False
        self.error: BaseException | None = None  # why reading stopped (limit, disconnect)

    async def _next(self) -> bytes | None:
        return await anext(self.chunks, None)

    def _pull(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._next(), self.loop)
        try:
            chunk = future.result(CHUNK_WAIT)
        except BaseException as exc:
            future.cancel()
            self.error = exc
            raise
        if chunk is None:
            self.done = True
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.error = TooLarge()
            raise self.error
        self.pending += chunk

    def read(self, size: int = -1) -> bytes:
        # Fills the whole request: minio's part reader would otherwise concatenate small chunks.
        while not self.done and (size < 0 or len(self.pending) < size):
            self._pull()
        cut = len(self.pending) if size < 0 else min(size, len(self.pending))
        data = bytes(self.pending[:cut])
        del self.pending[:cut]
        return data


class MediaStore:
    def __init__(self, settings: MinioSettings) -> None:
        self.bucket = settings.bucket
        # Short timeouts: a client waiting on an upload gets a 503 soon.
        self.client = media_bucket.client(settings, 5.0, 60.0, connections=PARALLEL_UPLOADS)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            PARALLEL_UPLOADS, thread_name_prefix="upload"
        )

    def _check(self) -> None:
        try:
            exists = self.client.bucket_exists(self.bucket)
        except Exception as exc:
            raise StoreUnavailable(_describe(exc)) from exc
        if not exists:
            raise StoreUnavailable(f"bucket {self.bucket} does not exist")

    def _store(self, reader: _BodyReader, key: str) -> int:
        try:
            self.client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, reader),  # minio only calls read()
                length=-1,  # unknown: Content-Length is not trusted; the reader counts
                part_size=PART_SIZE,
                content_type="application/octet-stream",
            )
        except Exception as exc:  # minio has aborted a multipart upload by now
            if reader.error is not None:
                raise reader.error from None  # the body was the problem, not the store
            raise StoreUnavailable(_describe(exc)) from exc
        return reader.size

    async def check(self) -> None:
        """Raise StoreUnavailable unless the bucket answers: before any body is read."""
        await asyncio.get_running_loop().run_in_executor(self.executor, self._check)

    async def put(self, key: str, first: bytes, rest: AsyncIterator[bytes], limit: int) -> int:
        """Store `first` + `rest` as `key`; its size. Raises TooLarge, StoreUnavailable, or
        what reading the body raised (a client that went away or stalled)."""
        if len(first) > limit:
            raise TooLarge()
        reader = _BodyReader(rest, asyncio.get_running_loop(), first, limit)
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self._store, reader, key
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _describe(exc: Exception) -> str:
    if isinstance(exc, S3Error):
        return f"object storage refused the write ({exc.code})"
    if isinstance(exc, MinioException):
        return f"object storage failed ({exc.__class__.__name__})"
    return f"object storage unreachable ({exc.__class__.__name__})"
