"""The seed's integration guide, end to end: real processes, Kafka, Redis, S3 and the model."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer

from stt_common.messages import SubmitEvent
from stt_testing import processes, speech
from tests.e2e.conftest import Stack
from tests.e2e.seed_client import get_stt_result, poll

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
MAX_WER_EN = 0.35
MAX_WER_VI = 0.8


def new_id() -> str:
    return "e2e-" + uuid.uuid4().hex[:12]


def assert_completed_english(body: dict[str, object]) -> None:
    assert body["status"] == "COMPLETED", body
    assert body["message"] == "Transcription completed successfully"
    error = speech.wer(speech.ENGLISH, str(body["transcription"]))
    assert error <= MAX_WER_EN, (error, body["transcription"])
    assert 5 < float(body["duration"]) < 15  # type: ignore[arg-type]
    assert 0 < float(body["confidence"]) <= 1  # type: ignore[arg-type]
    assert float(body["processing_time"]) > 0  # type: ignore[arg-type]


async def publish_submit(stack: Stack, event: SubmitEvent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.env["KAFKA_TOPIC_SUBMIT"],
            event.model_dump_json().encode(),
            key=event.request_id.encode(),
        )
    finally:
        await producer.stop()


def test_http_url(stack: Stack) -> None:
    body = get_stt_result(
        stack.api.url, f"{stack.media.url}/english.mp3", new_id(), processes.API_KEY, "en"
    )
    assert_completed_english(body)
    assert body["language"] == "en"
    assert body["segments"] and body["segments"][0]["end"] > body["segments"][0]["start"]


def test_presigned_minio_url_vietnamese(stack: Stack) -> None:
    key = f"clips/{uuid.uuid4().hex}.wav"
    stack.minio.fput_object(stack.bucket, key, str(stack.clips["vietnamese"]))
    url = stack.minio.presigned_get_object(stack.bucket, key, expires=timedelta(minutes=10))
    body = get_stt_result(stack.api.url, url, new_id(), processes.API_KEY, "vi")
    assert body["status"] == "COMPLETED", body
    assert body["language"] == "vi"
    error = speech.wer(speech.VIETNAMESE, str(body["transcription"]))
    assert error <= MAX_WER_VI, (error, body["transcription"])


def test_minio_reference(stack: Stack) -> None:
    key = f"clips/{uuid.uuid4().hex}.wav"
    stack.minio.fput_object(stack.bucket, key, str(stack.clips["english"]))
    body = get_stt_result(
        stack.api.url, f"minio://{stack.bucket}/{key}", new_id(), processes.API_KEY, "auto"
    )
    assert_completed_english(body)
    assert body["language"] == "en"


def test_forbidden_media_fails_with_the_seed_reason(stack: Stack) -> None:
    body = get_stt_result(
        stack.api.url, f"{stack.media.url}/forbidden/english.mp3", new_id(), processes.API_KEY
    )
    assert body["status"] == "FAILED"
    assert body["message"] == "Transcription failed"
    assert body["error"] == "Failed to download audio file: 403 Forbidden"


def test_not_audio_fails_clearly_and_the_worker_takes_the_next_job(stack: Stack) -> None:
    bad = get_stt_result(
        stack.api.url, f"{stack.media.url}/not-audio.mp3", new_id(), processes.API_KEY
    )
    assert bad["status"] == "FAILED"
    assert "Invalid format" in str(bad["error"]), bad
    good = get_stt_result(
        stack.api.url, f"{stack.media.url}/english.wav", new_id(), processes.API_KEY, "en"
    )
    assert_completed_english(good)


async def test_event_published_straight_to_kafka_is_pollable(stack: Stack) -> None:
    rid = new_id()
    event = SubmitEvent(request_id=rid, media_url=f"{stack.media.url}/english.wav", language="en")
    await publish_submit(stack, event)
    body = await asyncio.to_thread(poll, stack.api.url, rid, processes.API_KEY)
    assert_completed_english(body)


async def test_a_completed_job_is_not_transcribed_again(stack: Stack) -> None:
    rid = new_id()
    url = f"{stack.media.url}/english.wav?{rid}"
    first = await asyncio.to_thread(
        get_stt_result, stack.api.url, url, rid, processes.API_KEY, "en"
    )
    assert first["status"] == "COMPLETED"
    # The same submit event seen again (an upstream retry, a redelivery) must not run the model.
    await publish_submit(stack, SubmitEvent(request_id=rid, media_url=url, language="en"))
    for service in stack.transcribers:
        await asyncio.to_thread(
            service.wait_for_log, f'"already final; skipped", "request_id": "{rid}"'
        )
    assert stack.media.hits[f"/english.wav?{rid}"] == 1
    again = await asyncio.to_thread(poll, stack.api.url, rid, processes.API_KEY)
    assert again == first
