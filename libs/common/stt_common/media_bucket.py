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
