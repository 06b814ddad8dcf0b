"""Submits whose outcome is unknown: Kafka did not acknowledge the event in time, but the
producer still holds it and may deliver it later (stt_api.submit_events.PublishUnknown).

The API keeps the job's record (PROCESSING, with the short STT_SUBMIT_TTL_BEFORE_PUBLISH) and
stores the exact event under `stt:unconfirmed:{job_id}` (`stt_common.tenants.job_id`) for as
long. The client is told
"unknown, resubmit with the same request_id"; that resubmit sends this same event again, so the
job exists once it is acknowledged, whichever copy arrives. Two copies of one event are one job:
the transcriber's claim (stt_common.claims) runs it once, the ordering rule keeps one state.
"""

from __future__ import annotations

from redis.asyncio import Redis

from stt_common.messages import SubmitEvent

KEY_PREFIX = "stt:unconfirmed:"


def unconfirmed_key(job_id: str) -> str:
    return KEY_PREFIX + job_id


async def remember(redis: Redis, event: SubmitEvent, ttl: int) -> None:
    await redis.set(unconfirmed_key(event.job_id), event.model_dump_json(), ex=ttl)


def parse(data: bytes | None) -> SubmitEvent | None:
    """The event stored by `remember`, as read along with the job's record
    (`JobStore.create_if_ready`, one round trip per submit)."""
    return SubmitEvent.model_validate_json(data) if data else None


async def settle(redis: Redis, job_id: str) -> None:
    await redis.delete(unconfirmed_key(job_id))
