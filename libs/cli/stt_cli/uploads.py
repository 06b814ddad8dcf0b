"""`stt uploads prune [--older-than 7d] [--dry-run]`: delete uploaded media past its use.

`POST /api/v1/uploads` stores files under `uploads/` in the media bucket. A job reads its file
when it runs and again when it is replayed, so nothing deletes it then, and a file that was
uploaded but never submitted would stay for good. Run this from cron (the Kubernetes base has a
CronJob). The default age is the submit topic's retention (`KAFKA_SUBMIT_RETENTION_MS`, 7
days): a job older than that can no longer be replayed, so its media is no longer needed.
Only keys under `uploads/` are touched.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException
from urllib3.exceptions import HTTPError

from stt_common import media_bucket
from stt_common.settings import Settings, parse_duration

PREFIX = "uploads/"


def older(client: Minio, bucket: str, cutoff: datetime) -> Iterator[str]:
    """Keys under PREFIX last written before `cutoff`."""
    for item in client.list_objects(bucket, prefix=PREFIX, recursive=True):
        if item.object_name and item.last_modified and item.last_modified < cutoff:
            yield item.object_name


def prune(client: Minio, bucket: str, cutoff: datetime, dry_run: bool) -> tuple[int, list[str]]:
    """(how many keys were old enough, the failures); deletes them unless `dry_run`."""
    keys = list(older(client, bucket, cutoff))
    if dry_run or not keys:
        return len(keys), []
    errors = client.remove_objects(bucket, (DeleteObject(k) for k in keys))
    return len(keys), [f"{e.name}: {e.message}" for e in errors]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt uploads", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["prune"])
    parser.add_argument(
        "--older-than",
        type=parse_duration,
        help="age like 7d or 36h (default: KAFKA_SUBMIT_RETENTION_MS, the replay window)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    args = parser.parse_args(argv)
    settings = Settings()
    age = args.older_than
    if age is None:
        age = settings.kafka.submit_retention_ms / 1000
    bucket = settings.minio.bucket
    cutoff = datetime.now(UTC) - timedelta(seconds=age)
    client = media_bucket.client(settings.minio, connect_timeout=10, read_timeout=60)
    try:
        count, failures = prune(client, bucket, cutoff, args.dry_run)
    except (MinioException, HTTPError, OSError) as exc:
        print(f"stt uploads: cannot reach bucket {bucket}: {exc}")
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    done = count - len(failures)
    print(f"{verb} {done} upload(s) in {bucket} older than {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    for failure in failures:
        print(f"  not deleted: {failure}")
    return 1 if failures else 0
