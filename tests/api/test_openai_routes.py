"""The OpenAI-compatible routes against a real API process, Redis, Kafka and S3, with no
transcriber: a job stays PROCESSING, so the wait bound and its 504 are exercised, and the
submit event shows what the form asked. The model's answers are in tests/e2e/test_openai_sdk.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio

from stt_common.messages import MAX_HOTWORDS_CHARS, MAX_PROMPT_CHARS, Source, SubmitEvent, Task
from stt_testing import processes
from tests.api.conftest import submit_events

pytestmark = pytest.mark.infra
LIMIT = 200_000  # STT_MAX_UPLOAD_BYTES here
WAIT = 1.0  # STT_OPENAI_WAIT_SECONDS here
TRANSCRIPTIONS = "/v1/audio/transcriptions"
AUDIO = b"RIFF" + b"\0" * 2000  # stored as given: nothing reads it without a transcriber


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    """Overrides the package's: a small upload limit and a short wait."""
    return processes.service_env(
        infra.env(),
        prefix="oai" + uuid.uuid4().hex[:6],
        STT_MAX_UPLOAD_BYTES=str(LIMIT),
        STT_OPENAI_WAIT_SECONDS=str(WAIT),
        STT_MODEL="/models/whisper-large-v3",
    )


@pytest.fixture
async def bearer(api: processes.Api) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {processes.API_KEY}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=20) as http:
        yield http


@pytest.fixture(scope="module")
def bucket(infra: Any) -> Iterator[tuple[Minio, str]]:
    client = Minio(
        infra.minio_endpoint,
        access_key=infra.minio_access_key,
        secret_key=infra.minio_secret_key,
        secure=False,
    )
    yield client, infra.minio_bucket


def assert_openai_error(
    resp: httpx.Response, status: int, param: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["message"] and error["type"]
    assert error["param"] == param, error
    return error


async def test_models_lists_the_served_model_with_either_header(
    bearer: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for http in (bearer, client):  # Authorization: Bearer, and X-API-Key
        resp = await http.get("/v1/models")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "object": "list",
            "data": [
                {"id": "whisper-large-v3", "object": "model", "created": 0, "owned_by": "stt"}
            ],
        }
    assert (await bearer.get("/v1/models/whisper-large-v3")).status_code == 200
    error = assert_openai_error(await bearer.get("/v1/models/whisper-1"), 404, "model")
    assert error["code"] == "model_not_found"


async def test_a_missing_or_wrong_key_is_an_openai_401(api: processes.Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        missing = assert_openai_error(await http.get("/v1/models"), 401)
        assert "Bearer" in missing["message"]
        wrong = await http.post(
            TRANSCRIPTIONS,
            headers={"Authorization": "Bearer nope"},
            files={"file": ("a.wav", AUDIO)},
        )
        assert assert_openai_error(wrong, 401)["code"] == "invalid_api_key"
        basic = await http.get(
            "/v1/models", headers={"Authorization": f"Basic {processes.API_KEY}"}
        )
        assert_openai_error(basic, 401)
        # The native routes keep their own body.
        assert (await http.get("/api/v1/transcribe/x")).json() == {
            "detail": "Missing X-API-Key header"
        }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "xml"}, "response_format"),
        ({"language": "klingon"}, "language"),
        ({"temperature": "2"}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"hotwords": "x" * (MAX_HOTWORDS_CHARS + 1)}, "hotwords"),
        ({"timestamp_granularities[]": "sentence"}, "timestamp_granularities"),
        ({"stream": "true"}, "stream"),
    ],
)
async def test_bad_fields_are_an_openai_400_naming_the_param(
    bearer: httpx.AsyncClient,
    fields: dict[str, str],
    param: str,
    bucket: tuple[Minio, str],
) -> None:
    before = sum(1 for _ in bucket[0].list_objects(bucket[1], prefix="uploads/", recursive=True))
    resp = await bearer.post(TRANSCRIPTIONS, data=fields, files={"file": ("a.wav", AUDIO)})
    assert_openai_error(resp, 400, param)
    after = sum(1 for _ in bucket[0].list_objects(bucket[1], prefix="uploads/", recursive=True))
    assert after == before  # a refused form stores nothing


async def test_a_form_without_a_file_or_not_a_form_is_400(bearer: httpx.AsyncClient) -> None:
    no_file = await bearer.post(TRANSCRIPTIONS, data={"model": "whisper-1"}, files={"x": b""})
    assert_openai_error(no_file, 400, "file")
    as_json = await bearer.post(TRANSCRIPTIONS, json={"file": "a.wav"})
    assert_openai_error(as_json, 400, "file")
    empty = await bearer.post(TRANSCRIPTIONS, files={"file": ("a.wav", b"")})
    assert_openai_error(empty, 400, "file")


async def test_an_oversized_file_is_an_openai_413_declared_or_streamed(
    bearer: httpx.AsyncClient,
) -> None:
    declared = await bearer.post(
        TRANSCRIPTIONS, files={"file": ("big.wav", b"\0" * (LIMIT + 70_000))}
    )
    assert assert_openai_error(declared, 413, "file")["code"] == "file_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(LIMIT // 10_000 + 10):
            yield b"\0" * 10_000

    streamed = await bearer.post(
        TRANSCRIPTIONS,
        content=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_openai_error(streamed, 413, "file")


async def test_the_wait_is_bounded_and_the_job_stays_pollable(
    bearer: httpx.AsyncClient,
    client: httpx.AsyncClient,
    api_env: dict[str, str],
    bucket: tuple[Minio, str],
) -> None:
    resp = await bearer.post(
        "/v1/audio/translations",
        data={
            "model": "whisper-1",
            "prompt": "Nguyễn, Kafka",
            "hotwords": "Redpanda",
            "language": "VI",
            "temperature": "0.2",
            "response_format": "verbose_json",
        },
        files={"file": ("../Bài 1.wav", AUDIO, "audio/wav")},
    )
    error = assert_openai_error(resp, 504)
    rid = resp.headers["x-request-id"]
    assert rid.startswith("openai-") and rid in error["message"]
    assert "STT_OPENAI_WAIT_SECONDS" in error["message"]
    assert (error["type"], error["code"]) == ("timeout_error", "job_timeout")
    assert resp.headers["x-should-retry"] == "false"  # the SDKs would upload it again
    polled = await client.get(f"/api/v1/transcribe/{rid}")
    assert polled.json()["status"] == "PROCESSING"
    (raw,) = await submit_events(api_env, rid)
    event = SubmitEvent.model_validate_json(raw)
    assert (event.source, event.task, event.language) == (Source.API, Task.TRANSLATE, "vi")
    assert (event.prompt, event.hotwords, event.temperature) == ("Nguyễn, Kafka", "Redpanda", 0.2)
    assert event.segment_details and not event.word_timestamps
    client_s3, name = bucket
    assert event.media_url.startswith(f"minio://{name}/uploads/")
    assert event.media_url.endswith("/Bai_1.wav")
    key = event.media_url.split(f"minio://{name}/", 1)[1]
    stored = client_s3.get_object(name, key)
    try:
        assert stored.read() == AUDIO
    finally:
        stored.close()
        stored.release_conn()


async def test_word_granularity_asks_for_word_timestamps(
    bearer: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    resp = await bearer.post(
        TRANSCRIPTIONS,
        data={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        },
        files={"file": ("a.wav", AUDIO)},
    )
    assert resp.status_code == 504
    (raw,) = await submit_events(api_env, resp.headers["x-request-id"])
    event = SubmitEvent.model_validate_json(raw)
    assert event.word_timestamps and event.segment_details and event.task is Task.TRANSCRIBE
    assert (event.language, event.prompt, event.temperature) == ("auto", None, None)


async def test_native_submit_carries_the_decoding_options(
    client: httpx.AsyncClient, api_env: dict[str, str]
) -> None:
    rid = "opt-" + uuid.uuid4().hex
    body = {
        "request_id": rid,
        "media_url": "http://minio-host/bucket/a.mp3",
        "prompt": "Nguyễn Văn An",
        "hotwords": "Kafka",
        "task": "translate",
        "word_timestamps": True,
    }
    assert (await client.post("/api/v1/transcribe", json=body)).status_code == 202
    (raw,) = await submit_events(api_env, rid)
    event = SubmitEvent.model_validate_json(raw)
    assert (event.prompt, event.hotwords, event.task) == ("Nguyễn Văn An", "Kafka", Task.TRANSLATE)
    assert event.word_timestamps and not event.segment_details


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("prompt", "x" * (MAX_PROMPT_CHARS + 1), f"at most {MAX_PROMPT_CHARS} characters"),
        ("hotwords", "x" * (MAX_HOTWORDS_CHARS + 1), f"at most {MAX_HOTWORDS_CHARS} characters"),
        ("task", "summarise", "'transcribe' or 'translate'"),
        ("word_timestamps", "maybe", "valid boolean"),
    ],
)
async def test_native_options_out_of_bounds_are_422_naming_the_field(
    client: httpx.AsyncClient, field: str, value: str, says: str
) -> None:
    body = {"request_id": "bad-" + uuid.uuid4().hex, "media_url": "http://h/a.mp3", field: value}
    resp = await client.post("/api/v1/transcribe", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(f"{field}: "), resp.json()
    assert says in resp.json()["detail"]


async def test_the_openapi_document_lists_the_routes_with_bearer_auth(api: processes.Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        doc = (await http.get("/openapi.json")).json()
    operation = doc["paths"][TRANSCRIPTIONS]["post"]
    assert {"HTTPBearer": []} in operation["security"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert set(form["properties"]) >= {
        "file",
        "model",
        "language",
        "prompt",
        "response_format",
        "temperature",
        "timestamp_granularities[]",
    }
    assert "/v1/audio/translations" in doc["paths"] and "/v1/models" in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_client_that_leaves_stops_the_wait_not_the_job(
    api_env: dict[str, str], tmp_path: Path
) -> None:
    patient = processes.api(api_env | {"STT_OPENAI_WAIT_SECONDS": "120"}, tmp_path).start()
    try:
        patient.wait_ready()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{patient.url}{TRANSCRIPTIONS}",
                headers={"Authorization": f"Bearer {processes.API_KEY}"},
                files={"file": ("a.wav", AUDIO)},
                timeout=httpx.Timeout(10, read=1.5),
            )
        patient.wait_for_log("client left before the result; the job goes on", timeout=10)
        rid = patient.log_text().split('"request_id": "openai-', 1)[1][:32]
        polled = httpx.get(
            f"{patient.url}/api/v1/transcribe/openai-{rid}",
            headers={"X-API-Key": processes.API_KEY},
            timeout=10,
        )
        assert polled.json()["status"] == "PROCESSING"
    finally:
        patient.stop()
