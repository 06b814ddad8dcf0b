"""minio:// and s3:// may name only MINIO_BUCKET and MINIO_ALLOWED_BUCKETS (real API, real S3).

Any other bucket is refused with one 422, word for word the same whether the bucket exists,
holds the object, or does not exist at all: no existence oracle.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
import pytest
from minio import Minio

from stt_common.media_bucket import BUCKET_REFUSED
from stt_testing import processes

pytestmark = pytest.mark.infra
SUBMIT = "/api/v1/transcribe"
EXTRA = "stt-extra-" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def other_bucket(infra: Any) -> str:
    """A bucket the service's credentials can read, holding an object: not configured."""
    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
    )
    name = "stt-other-" + uuid.uuid4().hex[:6]
    client.make_bucket(name)
    client.put_object(name, "secret.wav", io.BytesIO(b"RIFF" + bytes(100)), 104)
    return name


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    prefix = "bkt" + uuid.uuid4().hex[:6]
    return processes.service_env(infra.env(), prefix=prefix, MINIO_ALLOWED_BUCKETS=EXTRA)


async def _submit(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(SUBMIT, json={"request_id": "b-" + uuid.uuid4().hex, "media_url": url})


async def test_other_buckets_are_refused_alike_whether_or_not_they_exist(
    client: httpx.AsyncClient, other_bucket: str
) -> None:
    urls = [
        f"minio://{other_bucket}/secret.wav",  # exists, readable with the service's keys
        f"minio://{other_bucket}/missing.wav",  # bucket exists, object does not
        "minio://no-such-bucket-at-all/x.wav",  # bucket does not exist
        f"s3://{other_bucket}/secret.wav",
        f"minio://{EXTRA.upper()}/x.wav",  # not the allowed name: buckets are case-sensitive
    ]
    answers = [await _submit(client, url) for url in urls]
    assert {a.status_code for a in answers} == {422}, [a.text for a in answers]
    assert {a.json()["detail"] for a in answers} == {f"media_url: {BUCKET_REFUSED}"}
    assert other_bucket not in answers[0].text


async def test_the_configured_and_the_allowed_buckets_are_accepted(
    client: httpx.AsyncClient, infra: Any
) -> None:
    for url in (
        f"minio://{infra.minio_bucket}/uploads/x.wav",
        f"s3://{infra.minio_bucket}/a/b.mp3",
        f"minio://{EXTRA}/x.wav",
    ):
        resp = await _submit(client, url)
        assert resp.status_code == 202, (url, resp.text)
