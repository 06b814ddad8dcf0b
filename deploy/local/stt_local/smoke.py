"""The smoke check of `stt local up`: one real job through the HTTP API, then what to try next.

The bundled sample (`sample/hello.ogg`, about 6 s of espeak-ng English, Opus) goes into the
S3 bucket, is submitted as `minio://<bucket>/samples/hello.ogg` with the first of STT_API_KEYS,
and is polled until it is COMPLETED or FAILED.
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stt_common.settings import ApiSettings, MinioSettings, load
from stt_common.tenants import key_of_entry
from stt_local.errors import LocalStackError

if TYPE_CHECKING:
    import httpx
    from minio import Minio

SAMPLE = Path(__file__).resolve().parent / "sample" / "hello.ogg"
SAMPLE_TEXT = "Hello from your computer. This short sentence was turned into text by the service."
SAMPLE_KEY = "samples/hello.ogg"
LANGUAGE = "en"
TIMEOUT = 120.0  # seconds from submit to a final status
SUBMIT_TIMEOUT = 30.0  # seconds to get a 202 (the API answers 503 until Kafka takes events)


@dataclass(frozen=True)
class SmokeResult:
    request_id: str
    media_url: str
    body: dict[str, Any]
    seconds: float

    @property
    def transcription(self) -> str:
        return str(self.body.get("transcription") or "").strip()


def api_url(api: ApiSettings) -> str:
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::", "") else api.host
    return f"http://{host}:{api.port}"


def api_key(api: ApiSettings) -> str:
    """The first of STT_API_KEYS, or "" when the API runs without keys (STT_ALLOW_NO_AUTH)."""
    return key_of_entry(api.api_keys[0].get_secret_value()) if api.api_keys else ""


def minio_client(minio: MinioSettings) -> Minio:
    from minio import Minio

    return Minio(
        minio.endpoint,
        access_key=minio.access_key,
        secret_key=minio.secret_key.get_secret_value(),
        secure=minio.secure,
        region=minio.region,
    )


def _fail(message: str, logs: Sequence[Path]) -> LocalStackError:
    where = "\n".join(f"  {path}" for path in logs)
    return LocalStackError(f"smoke check failed: {message}\nsee the service logs:\n{where}")


def upload_sample(minio: MinioSettings) -> str:
    """Put the sample into the bucket (again); returns its minio:// URL."""
    if not SAMPLE.is_file():
        raise LocalStackError(f"the bundled sample {SAMPLE} is missing; is the checkout complete?")
    client = minio_client(minio)
    if not client.bucket_exists(minio.bucket):
        client.make_bucket(minio.bucket)
    client.fput_object(minio.bucket, SAMPLE_KEY, str(SAMPLE), content_type="audio/ogg")
    return f"minio://{minio.bucket}/{SAMPLE_KEY}"


def _headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


def _submit(client: httpx.Client, body: dict[str, str], key: str, logs: Sequence[Path]) -> None:
    import httpx

    deadline = time.monotonic() + SUBMIT_TIMEOUT
    while True:
        try:
            response = client.post("/api/v1/transcribe", json=body, headers=_headers(key))
        except httpx.HTTPError as exc:
            problem = f"POST /api/v1/transcribe failed: {exc!r}"
        else:
            if response.status_code == 202:
                return
            problem = f"POST /api/v1/transcribe answered {response.status_code}: {response.text}"
            if response.status_code != 503:
                raise _fail(problem, logs)
        if time.monotonic() > deadline:
            raise _fail(problem, logs)
        time.sleep(1.0)


def run(
    logs: Sequence[Path] = (),
    api: ApiSettings | None = None,
    minio: MinioSettings | None = None,
    timeout: float = TIMEOUT,
) -> SmokeResult:
    """Transcribe the sample through the API; raises LocalStackError naming `logs` on failure."""
    import httpx

    api = api or load(ApiSettings)
    minio = minio or load(MinioSettings)
    key = api_key(api)
    try:
        media_url = upload_sample(minio)
    except Exception as exc:  # urllib3 and minio errors alike: no server, bad credentials
        raise _fail(f"uploading the sample to {minio.endpoint} failed: {exc}", logs) from None
    request_id = f"smoke-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    started = time.monotonic()
    body: dict[str, Any] = {}
    with httpx.Client(base_url=api_url(api), timeout=10) as client:
        job = {"request_id": request_id, "media_url": media_url, "language": LANGUAGE}
        _submit(client, job, key, logs)
        while time.monotonic() - started < timeout:
            try:
                response = client.get(f"/api/v1/transcribe/{request_id}", headers=_headers(key))
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 200:
                body = response.json()
                if body.get("status") == "COMPLETED":
                    return SmokeResult(request_id, media_url, body, time.monotonic() - started)
                if body.get("status") == "FAILED":
                    raise _fail(f"job {request_id} FAILED: {body.get('error')}", logs)
            elif response is not None and response.status_code != 404:
                raise _fail(f"GET answered {response.status_code}: {response.text}", logs)
            time.sleep(0.5)
    last = f"status {body.get('status')}, stage {body.get('stage')}" if body else "never found"
    raise _fail(f"job {request_id} not finished after {timeout:.0f} s ({last})", logs)


def next_steps(
    result: SmokeResult, api: ApiSettings | None = None, minio: MinioSettings | None = None
) -> str:
    """The curl lines a user would run next, with the real key and URL."""
    api = api or load(ApiSettings)
    minio = minio or load(MinioSettings)
    url, key = api_url(api), api_key(api)
    demo = f"demo-{secrets.token_hex(3)}"
    presigned = minio_client(minio).presigned_get_object(
        minio.bucket, SAMPLE_KEY, expires=timedelta(hours=1)
    )
    key_header = f" -H {shlex.quote('X-API-Key: ' + key)}" if key else ""

    def submit(request_id: str, media_url: str, language: str) -> str:
        body = json.dumps({"request_id": request_id, "media_url": media_url, "language": language})
        return (
            f"curl -X POST {url}/api/v1/transcribe -H 'Content-Type: application/json'"
            f"{key_header} \\\n    -d {shlex.quote(body)}"
        )

    return "\n".join([
        "Next, try it yourself:",
        "",
        f"  # submit a job: an object in the local S3 bucket ({minio.bucket} on {minio.endpoint})",
        "  " + submit(demo, result.media_url, "en"),
        "",
        '  # poll it (repeat until "status" is COMPLETED or FAILED)',
        f"  curl {url}/api/v1/transcribe/{demo}{key_header}",
        "",
        "  # or any http(s) URL, such as a presigned URL of the same object (valid for 1 hour)",
        "  " + submit(demo + "-url", presigned, "auto"),
        "",
        f"API docs: {url}/docs    the key and passwords: .env    stop everything: make down",
    ])  # fmt: skip
