"""Hostile requests against the real API process: each gets a 4xx with a JSON detail, never 5xx."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from stt_api.auth import NoApiKeysError, accepted_keys
from stt_common.settings import ApiSettings
from stt_testing import processes

pytestmark = pytest.mark.infra
URL = "http://media.example.com/audio.mp3"
SUBMIT = "/api/v1/transcribe"


def rid() -> str:
    return "h-" + uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    json: Any = None  # a request body to send as JSON ...
    content: bytes | None = None  # ... or raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = SUBMIT
    mentions: str = ""  # what the detail must name (the field, the rule)


def body(**fields: Any) -> dict[str, Any]:
    return {"request_id": rid(), "media_url": URL} | fields


JSON = {"Content-Type": "application/json"}
CASES = [
    # request_id
    Case("id empty", 422, body(request_id=""), mentions="request_id"),
    Case("id 129 chars", 422, body(request_id="a" * 129), mentions="request_id"),
    Case("id 128 chars is fine", 202, body(request_id=("h" + uuid.uuid4().hex * 4)[:128])),
    Case("id with slash", 422, body(request_id="../../etc"), mentions="request_id"),
    Case("id with space", 422, body(request_id="a b"), mentions="request_id"),
    Case("id with NUL", 422, body(request_id="a\x00b"), mentions="request_id"),
    Case("id with newline", 422, body(request_id="a\nb"), mentions="request_id"),
    Case("id non-ASCII", 422, body(request_id="идентификатор"), mentions="request_id"),
    Case("id as number", 422, body(request_id=5), mentions="request_id"),
    Case("id as null", 422, body(request_id=None), mentions="request_id"),
    Case("id missing", 422, {"media_url": URL}, mentions="request_id"),
    # media_url
    Case("url missing", 422, {"request_id": "x1"}, mentions="media_url"),
    Case("url file://", 422, body(media_url="file:///etc/passwd"), mentions="scheme"),
    Case("url gopher://", 422, body(media_url="gopher://h:70/_x"), mentions="scheme"),
    Case("url ftp://", 422, body(media_url="ftp://h/a.mp3"), mentions="scheme"),
    Case("url javascript:", 422, body(media_url="javascript:alert(1)"), mentions="scheme"),
    Case("url no scheme", 422, body(media_url="//h/a.mp3"), mentions="scheme"),
    Case("url credentials", 422, body(media_url="http://u:p@h/a.mp3"), mentions="credentials"),
    Case("url too long", 422, body(media_url="http://h/" + "a" * 5000), mentions="longer"),
    Case("url no host", 422, body(media_url="http:///a.mp3"), mentions="host"),
    Case("url with CRLF", 422, body(media_url="http://h/a\r\nX-Injected: 1"), mentions="control"),
    Case("url bucket only", 422, body(media_url="minio://bucket"), mentions="object"),
    Case("url as list", 422, body(media_url=[URL]), mentions="media_url"),
    Case("url as object", 422, body(media_url={"href": URL}), mentions="media_url"),
    # language
    Case("language unknown", 422, body(language="xx"), mentions="language"),
    Case("language injection", 422, body(language="en'; DROP"), mentions="language"),
    Case("language number", 422, body(language=1), mentions="language"),
    Case("language auto", 202, body(language="auto")),
    # the body as a whole
    Case("body array", 422, [body()], mentions="body"),
    Case("body string", 422, "x", mentions="body"),
    Case("body null", 422, None, content=b"null", headers=JSON),
    Case("body empty", 422, content=b"", headers=JSON),
    Case("malformed JSON", 422, content=b'{"request_id": "x1",', headers=JSON, mentions="JSON"),
    Case("invalid UTF-8", 422, content=b'{"request_id": "\xff\xfe"}', headers=JSON),
    Case("deeply nested", 422, content=b"[" * 5000 + b"]" * 5000, headers=JSON),
    Case(
        "form encoded",
        422,
        content=b"request_id=x1&media_url=http://h/a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "huge body",
        413,
        content=b'{"request_id": "' + b"a" * 40_000 + b'"}',
        headers=JSON,
        mentions="larger",
    ),
    Case("unknown fields are ignored", 202, body(callback="http://169.254.169.254/")),
    # the poll route's path parameter
    Case(
        "poll id too long", 422, method="GET", path=f"{SUBMIT}/{'a' * 200}", mentions="request_id"
    ),
    Case("poll id bad chars", 422, method="GET", path=f"{SUBMIT}/a%00b", mentions="request_id"),
    Case("poll id traversal", 404, method="GET", path=f"{SUBMIT}/..%2F..%2Fetc"),
    # authentication
    Case("no key", 401, body(), headers={"X-API-Key": ""}, mentions="X-API-Key"),
    Case("wrong key", 401, body(), headers={"X-API-Key": "wrong"}, mentions="Invalid"),
    Case("key in other case", 401, body(), headers={"X-API-Key": processes.API_KEY.upper()}),
    Case("key as prefix", 401, body(), headers={"X-API-Key": processes.API_KEY[:-1]}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_request(client: httpx.AsyncClient, case: Case) -> None:
    kwargs: dict[str, Any] = {"headers": case.headers}
    if case.content is not None:
        kwargs["content"] = case.content
    elif case.method == "POST":
        kwargs["json"] = case.json
    resp = await client.request(case.method, case.path, **kwargs)
    assert resp.status_code == case.status, resp.text
    answer = resp.json()
    if case.status >= 400:
        assert isinstance(answer["detail"], str) and answer["detail"], answer
        assert case.mentions in answer["detail"], answer
    else:
        assert answer["status"] == "PROCESSING"


async def test_streamed_body_without_length_is_cut_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"request_id": "'
        for _ in range(64):
            yield b"a" * 1024
        yield b'"}'

    resp = await client.post(SUBMIT, content=chunks(), headers=JSON)
    assert resp.status_code == 413
    assert "larger than the limit" in resp.json()["detail"]


# ---- rate limit and keys file: a second API process with a low limit ---------------------------


@pytest.fixture(scope="module")
def limited(
    api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[processes.Api, list[str]]]:
    workdir = tmp_path_factory.mktemp("api-limited")
    keys = ["file-key-" + uuid.uuid4().hex[:8], "file-key-" + uuid.uuid4().hex[:8]]
    secrets = workdir / "keys"
    secrets.write_text(f"# mounted secret\n{keys[0]}\n\n  {keys[1]}  \n")
    env = api_env | {
        "STT_API_KEYS": "",
        "STT_API_KEYS_FILE": str(secrets),
        "STT_RATE_LIMIT_PER_MINUTE": "5",
    }
    service = processes.api(env, workdir).start().wait_ready()
    yield service, keys
    service.stop()


async def test_rate_limit_is_429_with_retry_after_per_key(
    limited: tuple[processes.Api, list[str]], infra: Any
) -> None:
    api, (first, second) = limited
    if 60 - time.time() % 60 < 5:
        time.sleep(60 - time.time() % 60 + 0.1)  # all six requests in one window
    async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": first}) as http:
        answers = [(await http.get(f"{SUBMIT}/nope{i}")).status_code for i in range(6)]
        limited_resp = await http.post(SUBMIT, json=body())
    assert answers == [404] * 5 + [429]
    assert limited_resp.status_code == 429
    assert limited_resp.json() == {
        "detail": "Rate limit exceeded: 5 requests per minute per API key"
    }
    assert 1 <= int(limited_resp.headers["Retry-After"]) <= 60
    # The other key has its own budget, and a wrong key is 401 (checked before counting).
    async with httpx.AsyncClient(base_url=api.url) as http:
        other = await http.get(f"{SUBMIT}/nope", headers={"X-API-Key": second})
        wrong = await http.get(f"{SUBMIT}/nope", headers={"X-API-Key": "wrong"})
    assert (other.status_code, wrong.status_code) == (404, 401)
    # Redis holds a hash of the key, never the key.
    redis = aioredis.from_url(infra.redis_url)
    try:
        names = [k.decode() async for k in redis.scan_iter("stt:rate:*")]
    finally:
        await redis.aclose()
    digest = hashlib.sha256(first.encode()).hexdigest()[:16]
    assert any(name.startswith(f"stt:rate:{digest}:") for name in names)
    assert not any(first in name or second in name for name in names)
    assert first not in api.log_text() and second not in api.log_text()


def test_keys_file_is_merged_and_comments_skipped(tmp_path: Path) -> None:
    secrets = tmp_path / "keys"
    secrets.write_text("# comment\nk2\n\nk3\nk1\n")
    settings = ApiSettings(api_keys=["k1"], api_keys_file=secrets)  # type: ignore[arg-type]
    assert accepted_keys(settings) == [b"k1", b"k2", b"k3"]


def test_unreadable_keys_file_stops_the_start(tmp_path: Path) -> None:
    settings = ApiSettings(api_keys_file=tmp_path / "missing")
    with pytest.raises(NoApiKeysError, match="STT_API_KEYS_FILE"):
        accepted_keys(settings)


def test_no_auth_mode_says_so_at_start(
    api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = api_env | {"STT_API_KEYS": "", "STT_ALLOW_NO_AUTH": "true"}
    service = processes.api(env, tmp_path_factory.mktemp("api-noauth")).start().wait_ready()
    try:
        warnings = [
            json.loads(line)
            for line in service.log_text().splitlines()
            if "AUTHENTICATION IS OFF" in line
        ]
        assert warnings and warnings[0]["level"] == "warning"
        resp = httpx.get(f"{service.url}{SUBMIT}/nope", timeout=10)
        assert resp.status_code == 404  # served without a key
    finally:
        service.stop()
