"""`stt uploads prune` against the session's S3 server, in a bucket of its own (other tests'
uploads must not be pruned under them)."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
from minio import Minio

from stt_cli.main import main
from stt_common.settings import parse_duration

pytestmark = pytest.mark.infra
GAP = 2.5  # seconds between the old and the new uploads; listings give whole seconds


@pytest.fixture
def bucket(infra: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Minio, str]:
    for name, value in infra.env().items():
        monkeypatch.setenv(name, value)
    name = "prune-" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("MINIO_BUCKET", name)
    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
    )
    client.make_bucket(name)
    return client, name


def put(client: Minio, bucket: str, key: str) -> None:
    client.put_object(bucket, key, io.BytesIO(b"media"), 5)


def keys(client: Minio, bucket: str) -> set[str]:
    return {o.object_name or "" for o in client.list_objects(bucket, recursive=True)}


def test_old_uploads_go_and_the_rest_stays(
    bucket: tuple[Minio, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, name = bucket
    put(client, name, "uploads/aaa/old.mp3")
    put(client, name, "samples/hello.ogg")  # old, but not an upload
    time.sleep(GAP)
    put(client, name, "uploads/bbb/new.mp3")

    assert main(["uploads", "prune", "--older-than", "2s", "--dry-run"]) == 0
    assert "would delete 1 upload(s)" in capsys.readouterr().out
    assert len(keys(client, name)) == 3  # a dry run deletes nothing

    assert main(["uploads", "prune", "--older-than", "2s"]) == 0
    assert "deleted 1 upload(s)" in capsys.readouterr().out
    assert keys(client, name) == {"samples/hello.ogg", "uploads/bbb/new.mp3"}


def test_the_default_age_is_the_replay_window(
    bucket: tuple[Minio, str], capsys: pytest.CaptureFixture[str]
) -> None:
    client, name = bucket
    put(client, name, "uploads/ccc/recent.mp3")
    assert main(["uploads", "prune"]) == 0  # KAFKA_SUBMIT_RETENTION_MS: 7 days by default
    assert "deleted 0 upload(s)" in capsys.readouterr().out
    assert keys(client, name) == {"uploads/ccc/recent.mp3"}


def test_an_unreachable_bucket_is_one_line(
    bucket: tuple[Minio, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MINIO_BUCKET", "no-such-bucket-" + uuid.uuid4().hex[:6])
    assert main(["uploads", "prune"]) == 1
    assert "cannot reach bucket no-such-bucket-" in capsys.readouterr().out


def test_days_are_a_duration() -> None:
    assert parse_duration("7d") == 7 * 86400
