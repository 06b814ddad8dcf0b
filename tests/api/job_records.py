"""Writes job states straight into the API's Redis, for tests of what the API answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from stt_common import job_store
from stt_common.messages import JobRecord, JobStatus, Segment
from stt_common.settings import RedisSettings


def redis_settings(env: dict[str, str]) -> RedisSettings:
    return RedisSettings(
        host=env["REDIS_HOST"],
        port=int(env["REDIS_PORT"]),
        password=env.get("REDIS_PASSWORD") or None,
        job_ttl=int(env.get("REDIS_JOB_TTL", "3600")),
    )


@asynccontextmanager
async def store(env: dict[str, str]) -> AsyncIterator[job_store.JobStore]:
    settings = redis_settings(env)
    redis = job_store.connect(settings)
    try:
        yield job_store.JobStore(redis, settings.job_ttl)
    finally:
        await redis.aclose()


def completed(request_id: str, segments: list[Segment]) -> JobRecord:
    return JobRecord(
        request_id=request_id,
        status=JobStatus.COMPLETED,
        stage="done",
        progress=1.0,
        transcription=" ".join(s.text for s in segments),
        duration=segments[-1].end if segments else 0.0,
        segments=segments,
    )
