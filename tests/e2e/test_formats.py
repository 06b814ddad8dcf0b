"""Subtitles of a job transcribed by the real model, and deleting a job, end to end."""

from __future__ import annotations

import asyncio
import html
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import srt
import webvtt
from prometheus_client.parser import text_string_to_metric_families

from stt_testing import kafka_tools, processes
from tests.e2e.conftest import Stack
from tests.e2e.seed_client import get_stt_result

pytestmark = [pytest.mark.infra, pytest.mark.e2e]
HEADERS = {"X-API-Key": processes.API_KEY}


def new_id() -> str:
    return "fmt-" + uuid.uuid4().hex[:12]


async def result_events(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    records = await kafka_tools.keyed_records(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"], stack.env["KAFKA_TOPIC_RESULTS"], {request_id}
    )
    return [json.loads(r.value) for r in records]


def test_srt_and_vtt_of_a_completed_job(stack: Stack) -> None:
    rid = new_id()
    body = get_stt_result(
        stack.api.url, f"{stack.media.url}/english.wav", rid, processes.API_KEY, "en"
    )
    assert body["status"] == "COMPLETED", body
    url = f"{stack.api.url}/api/v1/transcribe/{rid}"
    srt_text = httpx.get(url, params={"format": "srt"}, headers=HEADERS, timeout=10).text
    cues = list(srt.parse(srt_text))
    assert [c.index for c in cues] == list(range(1, len(body["segments"]) + 1))
    for cue, segment in zip(cues, body["segments"], strict=True):
        assert abs(cue.start.total_seconds() - segment["start"]) < 0.001
        assert abs(cue.end.total_seconds() - segment["end"]) < 0.001
        assert cue.content == segment["text"]
    vtt_text = httpx.get(url, params={"format": "vtt"}, headers=HEADERS, timeout=10).text
    assert vtt_text.startswith("WEBVTT\n")
    captions = list(webvtt.from_string(vtt_text))
    assert [html.unescape(c.text) for c in captions] == [s["text"] for s in body["segments"]]
    assert " ".join(c.content for c in cues) == body["transcription"]
    # The progress events tell the audio length as soon as it is probed (for poll hints).
    events = asyncio.run(result_events(stack, rid))
    transcribing = [e for e in events if e.get("stage") == "transcribing"]
    assert transcribing and all(
        e["duration"] == pytest.approx(body["duration"], abs=0.1) for e in transcribing
    )


def test_a_deleted_job_is_cancelled_and_never_comes_back(stack: Stack) -> None:
    rid = new_id()
    path = f"/flaky/1/english.wav?{rid}"  # 503 once: the job waits 1 s on the retry topic
    url = f"{stack.api.url}/api/v1/transcribe/{rid}"
    body = {"request_id": rid, "media_url": stack.media.url + path, "language": "en"}
    assert httpx.post(url.rsplit("/", 1)[0], json=body, headers=HEADERS).status_code == 202
    deadline = time.monotonic() + 30
    while stack.media.hits[path] < 1:
        assert time.monotonic() < deadline, "the first attempt never fetched the media"
        time.sleep(0.02)
    assert httpx.delete(url, headers=HEADERS).status_code == 204
    (transcriber,) = stack.transcribers
    transcriber.wait_for_log(f'"job FAILED", "request_id": "{rid}"', timeout=30)
    assert stack.media.hits[path] == 1  # the retry stopped before downloading
    time.sleep(1.5)  # the projector has seen the FAILED result by now
    assert httpx.get(url, headers=HEADERS).status_code == 404


def test_transcriber_metrics(stack: Stack) -> None:
    """Last in this module: swaps its transcriber for one serving /metrics."""
    for service in stack.transcribers:
        service.stop()
    port = processes.free_port()
    env = stack.env | {"STT_METRICS_PORT": str(port), "STT_METRICS_HOST": "127.0.0.1"}
    metered = processes.worker("transcriber", env, stack.workdir, name="transcriber-m").start()
    stack.transcribers.append(metered)
    metered.wait_for_log("ready", timeout=120)
    ok = get_stt_result(
        stack.api.url, f"{stack.media.url}/english.wav", new_id(), processes.API_KEY, "en"
    )
    bad = get_stt_result(
        stack.api.url, f"{stack.media.url}/forbidden/x.wav", new_id(), processes.API_KEY
    )
    assert (ok["status"], bad["status"]) == ("COMPLETED", "FAILED")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("stt_jobs_completed_total", ())] == 1
    assert samples[("stt_jobs_failed_total", (("reason", "forbidden"),))] == 1
    assert samples[("stt_job_processing_seconds_count", ())] == 2
    assert samples[("stt_job_queue_seconds_count", ())] == 2
    assert samples[("stt_audio_seconds_total", ())] == pytest.approx(ok["duration"], abs=0.01)
    assert samples[("stt_model_load_seconds", ())] > 0
    lag = [k for k in samples if k[0] == "stt_consumer_lag"]
    assert lag and all(samples[k] >= 0 for k in lag)
