"""`POST /api/v1/uploads` against a real API process and the session's S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from minio import Minio

from stt_api.media_store import PART_SIZE
from stt_api.routes.uploads import safe_name
from stt_testing import processes

pytestmark = pytest.mark.infra
LIMIT = PART_SIZE + 4 * 1024 * 1024  # room for a two-part (multipart) upload
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    """Overrides the package's: a small upload limit, so that 413 costs a few MB."""
    prefix = "upl" + uuid.uuid4().hex[:6]
    return processes.service_env(infra.env(), prefix=prefix, STT_MAX_UPLOAD_BYTES=str(LIMIT))


@pytest.fixture(scope="module")
def bucket(infra: Any) -> tuple[Minio, str]:
    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
    )
    return client, infra.minio_bucket


def stored(bucket: tuple[Minio, str], media_url: str) -> bytes:
    client, name = bucket
    parts = urlsplit(media_url)
    assert (parts.scheme, parts.hostname) == ("minio", name)
    response = client.get_object(name, parts.path.lstrip("/"))
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def uploads_in(bucket: tuple[Minio, str]) -> int:
    client, name = bucket
    return sum(1 for _ in client.list_objects(name, prefix="uploads/", recursive=True))


async def test_upload_stores_the_bytes_and_the_url_can_be_submitted(
    client: httpx.AsyncClient, bucket: tuple[Minio, str]
) -> None:
    data = os.urandom(100_000)
    resp = await client.post(
        "/api/v1/uploads", content=data, params={"filename": "../Bài hát 1.wav"}, headers=OCTETS
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["size"] == len(data)
    assert body["media_url"].endswith("/Bai_hat_1.wav")
    assert body["media_url"].startswith(f"minio://{bucket[1]}/uploads/")
    assert stored(bucket, body["media_url"]) == data
    job = {"request_id": "upl-" + uuid.uuid4().hex, "media_url": body["media_url"]}
    assert (await client.post("/api/v1/transcribe", json=job)).status_code == 202


async def test_a_streamed_body_larger_than_one_part_is_stored_whole(
    client: httpx.AsyncClient, bucket: tuple[Minio, str]
) -> None:
    data = os.urandom(PART_SIZE + 1_500_000)

    async def chunks() -> Any:  # chunked transfer: no Content-Length to trust
        for start in range(0, len(data), 300_000):
            yield data[start : start + 300_000]

    resp = await client.post("/api/v1/uploads", content=chunks(), headers=OCTETS)
    assert resp.status_code == 201, resp.text
    assert resp.json()["size"] == len(data)
    assert resp.json()["media_url"].endswith("/upload")  # no filename given
    assert stored(bucket, resp.json()["media_url"]) == data


async def test_too_large_is_413_whether_declared_or_streamed(
    client: httpx.AsyncClient, bucket: tuple[Minio, str]
) -> None:
    before = uploads_in(bucket)
    declared = await client.post("/api/v1/uploads", content=b"x" * (LIMIT + 1), headers=OCTETS)
    assert declared.status_code == 413 and "STT_MAX_UPLOAD_BYTES" in declared.json()["detail"]

    async def endless() -> Any:
        for _ in range(LIMIT // 1_000_000 + 2):
            yield b"y" * 1_000_000

    streamed = await client.post("/api/v1/uploads", content=endless(), headers=OCTETS)
    assert streamed.status_code == 413
    assert uploads_in(bucket) == before  # the cut-off multipart upload was aborted


@pytest.mark.parametrize("key", [None, "wrong"], ids=["missing", "wrong"])
async def test_a_missing_or_wrong_key_is_401(api: processes.Api, key: str | None) -> None:
    headers = OCTETS | ({"X-API-Key": key} if key else {})
    resp = httpx.post(f"{api.url}/api/v1/uploads", content=b"abc", headers=headers, timeout=10)
    assert resp.status_code == 401


async def test_empty_body_and_form_bodies_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/uploads", content=b"", headers=OCTETS)).status_code == 400
    form = await client.post("/api/v1/uploads", files={"file": ("a.wav", b"RIFF")})
    assert form.status_code == 415 and "octet-stream" in form.json()["detail"]


async def test_other_routes_keep_the_small_body_limit(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/v1/transcribe", content=b"{" + b" " * 20_000 + b"}")
    assert resp.status_code == 413


def test_safe_name() -> None:
    assert safe_name(None) == "upload"
    assert safe_name("..") == "upload"
    assert safe_name("C:\\Users\\me\\talk (1).MP3") == "talk_1_.MP3"
    assert safe_name("/etc/passwd") == "passwd"
    assert safe_name(".hidden.wav") == "hidden.wav"
    long = safe_name("a" * 300 + ".ogg")
    assert len(long) == 100 and long.endswith(".ogg")


# ---- when the object store cannot take it ------------------------------------------------------


@pytest.fixture(
    params=[{"MINIO_BUCKET": "no-such-bucket"}, {"MINIO_ENDPOINT": "127.0.0.1:1"}],
    ids=["bucket missing", "store down"],
)
def broken_api(
    request: pytest.FixtureRequest, api_env: dict[str, str], tmp_path: Path
) -> Iterator[processes.Api]:
    service = processes.api(api_env | request.param, tmp_path).start().wait_ready()
    yield service
    service.stop()


def test_an_unavailable_store_is_503_with_the_reason(broken_api: processes.Api) -> None:
    headers = OCTETS | {"X-API-Key": processes.API_KEY}
    resp = httpx.post(
        f"{broken_api.url}/api/v1/uploads", content=b"abc" * 1000, headers=headers, timeout=30
    )
    assert resp.status_code == 503, resp.text
    detail = resp.json()["detail"]
    assert "no-such-bucket does not exist" in detail or "unreachable" in detail
