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
