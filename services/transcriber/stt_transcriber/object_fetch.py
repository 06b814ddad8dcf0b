"""Reads minio://bucket/key and s3://bucket/key objects from the configured MinIO/S3 endpoint.

Synchronous (the MinIO client is): `media_fetch` runs it in a thread, so the overall deadline
is checked between chunks here instead of by cancelling.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from stt_common import media_bucket
from stt_common.settings import FetchSettings, MinioSettings
from stt_transcriber.download_pace import Pace, ShouldStop
from stt_transcriber.errors import DOWNLOAD_FAILED, JobError, empty_media, too_large

CHUNK = 64 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NoSuchObject"}
_FORBIDDEN = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_TRANSIENT = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "XMinioServerNotInitialized",
}


def minio_origin(minio: MinioSettings) -> tuple[str, int]:
    """(host, port) of the MinIO endpoint: presigned URLs to exactly it pass the address check."""
    netloc, tls = media_bucket.endpoint(minio)
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        port = 0  # a malformed endpoint matches no URL
    return (parts.hostname or "").rstrip(".").lower(), port


def _s3_error(exc: S3Error, bucket: str, key: str) -> JobError:
    code = exc.code or ""
    if code in _NOT_FOUND:  # a missing bucket and a missing object read the same
        return JobError(f"{DOWNLOAD_FAILED}: object {bucket}/{key} not found", "not_found")
    if code in _FORBIDDEN:
        return JobError(
            f"{DOWNLOAD_FAILED}: access to {bucket}/{key} denied ({code}; check MINIO_ACCESS_KEY "
            "and the bucket policy)",
            "forbidden",
        )
    status = exc.response.status if exc.response is not None else 0
    transient = code in _TRANSIENT or status >= 500 or status == 429
    return JobError(
        f"{DOWNLOAD_FAILED}: {code or status} for {bucket}/{key}", "download", transient
    )


def fetch_object(
    url: str,
    dest: Path,
    fetch: FetchSettings,
    minio: MinioSettings,
    should_stop: ShouldStop | None = None,
) -> None:
    """Download the object `url` names to `dest`, within the size limit, overall deadline and
    minimum rate (`download_pace`), stopping at the next chunk once `should_stop()`."""
    if not media_bucket.readable(url, minio):  # before any request: the store says nothing
        raise JobError(media_bucket.BUCKET_REFUSED, "blocked_url")
    parts = urlsplit(url)
    bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    where = media_bucket.endpoint(minio)[0]
    pace = Pace(fetch, where, should_stop)
    try:
        client = media_bucket.client(minio, fetch.connect_timeout, fetch.read_timeout)
        response = client.get_object(bucket, key)
    except S3Error as exc:
        raise _s3_error(exc, bucket, key) from exc
    except (ServerError, InvalidResponseError) as exc:
        status: int = getattr(exc, "status_code", None) or getattr(exc, "_code", None) or 0
        transient = status >= 500 or status == 429
        raise JobError(f"{DOWNLOAD_FAILED}: {exc} ({where})", "download", transient) from exc
    except ValueError as exc:  # the client validates bucket and object names
        raise JobError(f"{DOWNLOAD_FAILED}: {exc}", "download") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_error(exc, where) from exc
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > fetch.max_bytes:
            raise too_large(fetch.max_bytes)
        with dest.open("wb") as out:
            # read1: what has arrived, up to CHUNK (read() would wait for a full CHUNK).
            while chunk := response.read1(CHUNK):
                pace.add(len(chunk))
                if pace.total > fetch.max_bytes:
                    raise too_large(fetch.max_bytes)
                out.write(chunk)
        if pace.total == 0:
            raise empty_media()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_error(exc, where) from exc
    finally:
        response.close()
        response.release_conn()


def _connection_error(exc: Exception, where: str) -> JobError:
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, so it is tested first.
    if isinstance(exc, urllib3.exceptions.TimeoutError) and not isinstance(
        exc, urllib3.exceptions.NewConnectionError
    ):
        return JobError(f"{DOWNLOAD_FAILED}: timed out ({where})", "timeout", transient=True)
    # urllib3 prefixes the connection's repr ("HTTPConnection(host=..., port=...): ...").
    what = str(exc).rsplit("): ", 1)[-1] or type(exc).__name__
    return JobError(f"{DOWNLOAD_FAILED}: {what} ({where})", "download", transient=True)
