"""The MinIO/S3 client of the media bucket, built one way for every process that reaches it: the
API (uploads), the transcriber (minio:// and s3:// fetches) and `stt uploads prune`."""

from __future__ import annotations

from urllib.parse import urlsplit

import urllib3
from minio import Minio

from stt_common.settings import MinioSettings


def endpoint(settings: MinioSettings) -> tuple[str, bool]:
    """host:port, and TLS: the endpoint's own scheme when it is given as a URL, else
    MINIO_SECURE."""
    if "://" in settings.endpoint:
        parts = urlsplit(settings.endpoint)
        return parts.netloc, parts.scheme.lower() == "https"
    return settings.endpoint.rstrip("/"), settings.secure


def client(
    settings: MinioSettings, connect_timeout: float, read_timeout: float, connections: int = 10
) -> Minio:
    """No urllib3 retries: each caller has its own (the worker retries with backoff, an upload
    answers 503 soon)."""
    host, secure = endpoint(settings)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=False,
        maxsize=connections,
    )
    return Minio(
        host,
        access_key=settings.access_key or None,
        secret_key=settings.secret_key.get_secret_value() or None,
        secure=secure,
        region=settings.region or None,
        http_client=http,
    )


# One answer for every refused bucket, whether it exists or not, so that the refusal says nothing
# about what the service's credentials could reach (no existence oracle).
BUCKET_REFUSED = (
    "media_url names a bucket this service does not read (only MINIO_BUCKET and "
    "MINIO_ALLOWED_BUCKETS)"
)


def bucket_of(url: str) -> str | None:
    """The bucket a minio:// or s3:// URL names; None for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("minio", "s3"):
        return None
    return parts.netloc


def readable(url: str, settings: MinioSettings) -> bool:
    """False when `url` is minio:// or s3:// and names a bucket outside the allowed ones.

    The bucket is compared exactly as the client would send it (case and all), before any
    request is made, so no answer of the store can leak through.
    """
    bucket = bucket_of(url)
    return bucket is None or bucket in settings.readable_buckets()
