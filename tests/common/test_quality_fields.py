"""The quality fields (issue 11) travel from the result event to the API body and the SDK, are in
the JSON Schemas, and older records without them still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stt_client import Job
from stt_common.messages import (
    JobRecord,
    JobResponse,
    JobStatus,
    RemovalReason,
    RemovedSegment,
    ResultEvent,
    Segment,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "libs" / "common" / "schemas"
JOB_FIELDS = {"speech_seconds", "detected_language", "language_mismatch", "removed_segments"}
SEGMENT_FIELDS = {"no_speech_prob", "avg_logprob", "compression_ratio"}


def test_fields_reach_the_api_body_and_the_sdk() -> None:
    result = ResultEvent(
        request_id="q1",
        status=JobStatus.COMPLETED,
        transcription="",
        duration=15.0,
        confidence=0.0,
        speech_seconds=0.0,
        detected_language=None,
        language_mismatch=None,
        segments=[],
        removed_segments=[
            RemovedSegment(start=0.0, end=2.0, text="You", reason=RemovalReason.KNOWN_HALLUCINATION)
        ],
    )
    body = JobResponse.from_record(JobRecord.from_result(result)).model_dump(mode="json")
    assert body["transcription"] == "" and body["speech_seconds"] == 0.0
    assert body["removed_segments"] == [
        {"start": 0.0, "end": 2.0, "text": "You", "reason": "known_hallucination"}
    ]
    job = Job.model_validate(body)
    assert job.speech_seconds == 0.0 and job.removed_segments
    assert job.removed_segments[0].reason == "known_hallucination"


def test_segment_evidence_round_trips() -> None:
    seg = Segment(start=0, end=1, text="hi", no_speech_prob=0.01, avg_logprob=-0.2,
                  compression_ratio=0.9)
    again = Segment.model_validate_json(seg.model_dump_json())
    assert again == seg
    assert Job.model_validate({"request_id": "x", "status": "COMPLETED",
                               "segments": [seg.model_dump()]}).segments[0].avg_logprob == -0.2


def test_a_record_from_before_still_reads() -> None:
    old = {"request_id": "o", "status": "COMPLETED", "transcription": "hello",
           "segments": [{"start": 0, "end": 1, "text": "hello"}], "language_probability": 1.0}
    record = JobRecord.model_validate(old)
    assert record.speech_seconds is None and record.segments[0].no_speech_prob is None  # type: ignore[index]


def test_fields_are_in_the_json_schemas() -> None:
    for name in ("result-event", "job-record"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        assert JOB_FIELDS <= schema["properties"].keys(), name
        defs = schema.get("$defs", {})
        assert SEGMENT_FIELDS <= defs["Segment"]["properties"].keys()
        assert set(defs["RemovalReason"]["enum"]) == {r.value for r in RemovalReason}


def test_fields_are_in_the_openapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from stt_api.app import create_app

    monkeypatch.setenv("STT_API_KEYS", "test-key")
    schemas = create_app().openapi()["components"]["schemas"]
    assert JOB_FIELDS <= schemas["JobResponse"]["properties"].keys()
    assert SEGMENT_FIELDS <= schemas["Segment"]["properties"].keys()
    assert set(schemas["RemovalReason"]["enum"]) == {r.value for r in RemovalReason}
