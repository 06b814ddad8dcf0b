import pytest
from pydantic import ValidationError

from stt_common.messages import (
    JobRecord,
    JobResponse,
    JobStatus,
    Phase,
    ResultEvent,
    SubmitEvent,
    TranscribeRequest,
)


@pytest.mark.parametrize(
    "request_id", ["7577034049470926087", "123_1700000000", "a.b:c-d", "x" * 128]
)
def test_request_ids_the_seed_uses_are_valid(request_id: str) -> None:
    TranscribeRequest(request_id=request_id, media_url="http://minio-host/bucket/audio.mp3")


@pytest.mark.parametrize(
    "request_id", ["", "a/b", "a b", "job*", "x" * 129, "tab\there", "q?", "[id]"]
)
def test_hostile_request_ids_are_refused(request_id: str) -> None:
    with pytest.raises(ValidationError, match="request_id"):
        TranscribeRequest(request_id=request_id, media_url="http://host/a.mp3")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://host/a.mp3", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:pw@host/a.mp3", "credentials"),
        ("http:///nohost", "host"),
        ("minio://bucket", "object"),
        ("http://host/a b.mp3", "whitespace"),
        ("http://host/" + "a" * 5000, "longer"),
    ],
)
def test_hostile_media_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        TranscribeRequest(request_id="r1", media_url=url)


def test_language_defaults_to_vi_and_accepts_auto() -> None:
    assert TranscribeRequest(request_id="r", media_url="s3://b/k").language == "vi"
    assert (
        TranscribeRequest(request_id="r", media_url="s3://b/k", language="AUTO").language == "auto"
    )
    with pytest.raises(ValidationError, match="language"):
        TranscribeRequest(request_id="r", media_url="s3://b/k", language="klingon")


def test_processing_body_is_the_seed_shape() -> None:
    record = JobRecord.from_submit(SubmitEvent(request_id="7", media_url="http://h/a.mp3"))
    body = JobResponse.from_record(record).model_dump(exclude_none=True)
    assert body["request_id"] == "7"
    assert body["status"] == "PROCESSING"
    assert body["message"] == "Transcription in progress"
    assert "transcription" not in body and "error" not in body


def test_result_becomes_a_complete_record() -> None:
    submit = SubmitEvent(request_id="7", media_url="http://h/a.mp3", language="en")
    result = ResultEvent(
        request_id="7",
        status=JobStatus.COMPLETED,
        transcription="hello",
        duration=1.5,
        confidence=0.9,
        processing_time=0.4,
        media_url=submit.media_url,
        submitted_at=submit.submitted_at,
    )
    record = JobRecord.from_result(result)
    assert record.phase is Phase.TERMINAL
    assert record.updated_at == result.emitted_at
    body = JobResponse.from_record(record).model_dump(exclude_none=True)
    assert body["message"] == "Transcription completed successfully"
    assert body["transcription"] == "hello" and body["duration"] == 1.5


def test_a_body_built_from_a_record_is_what_validating_it_gives() -> None:
    """`JobResponse.from_record` hands the record's values over as they are (segments as
    instances, not dumped and validated again): every field, nested segments, words and removed
    segments included, must serialise exactly as a body validated from plain JSON data would."""
    result = ResultEvent.model_validate(
        {
            "request_id": "7",
            "tenant": "acme",
            "generation": 2,
            "status": "COMPLETED",
            "stage": "done",
            "progress": 1.0,
            "attempt": 2,
            "transcription": "hello there",
            "duration": 1.5,
            "confidence": 0.9,
            "processing_time": 0.4,
            "language": "en",
            "language_probability": 0.98,
            "segments": [
                {
                    "start": 0,
                    "end": 1.5,
                    "text": "hello there",
                    "no_speech_prob": 0.01,
                    "words": [{"word": "hello", "start": 0, "end": 0.5}],
                }
            ],
            "removed_segments": [
                {"start": 1.5, "end": 2, "text": "Thanks", "reason": "known_hallucination"}
            ],
            "speech_seconds": 1.4,
            "detected_language": "en",
            "language_mismatch": False,
            "media_url": "http://h/a.mp3",
            "submitted_at": "2026-12-03T10:00:00Z",
            "metadata": {"post_id": "1"},
            "priority": "batch",
        }
    )
    for record in (
        JobRecord.from_result(result),
        JobRecord.from_submit(SubmitEvent(request_id="8", media_url="http://h/a.mp3")),
    ):
        body = JobResponse.from_record(record, "a message")
        validated = JobResponse.model_validate(body.model_dump())
        assert body.model_dump_json() == validated.model_dump_json()
        assert body.model_dump_json(exclude_none=True) == validated.model_dump_json(
            exclude_none=True
        )
    assert JobResponse.from_record(JobRecord.from_result(result)).segments == result.segments
