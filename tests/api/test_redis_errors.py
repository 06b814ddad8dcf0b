"""Redis full (maxmemory reached, noeviction: "OOM command not allowed") or down: every route
that needs it answers the documented JSON 503 with Retry-After, never a bare 500, and `/ready`
says not ready because it checks that Redis accepts a write (issue 13 item 7). Real API
process, real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from stt_testing import processes

pytestmark = pytest.mark.infra
SUBMIT = "/api/v1/transcribe"


def requests(rid: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx kwargs) of every route that writes to Redis or reads a job."""
    job = {"request_id": rid, "media_url": "http://127.0.0.1:9/a.wav"}
    form = {"files": {"file": ("a.wav", b"RIFF" + b"\0" * 100)}, "data": {"model": "whisper-1"}}
    return [
        ("POST", SUBMIT, {"json": job}),
        ("DELETE", f"{SUBMIT}/{rid}-known", {}),
        ("POST", "/v1/audio/transcriptions", form),
    ]


def assert_json_503(resp: httpx.Response) -> None:
    assert resp.status_code == 503, (resp.request.method, resp.request.url, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    assert resp.headers["Retry-After"].isdigit()
    body = resp.json()
    assert isinstance(body.get("detail") or body.get("error"), str | dict), body


@pytest.fixture
def full_redis(infra: Any) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(infra.redis_url)
    before = client.config_get("maxmemory")["maxmemory"]
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "noeviction")
    try:
        yield client
    finally:
        client.config_set("maxmemory", before)
        client.config_set("maxmemory-policy", policy)
        client.close()


def test_redis_full_answers_json_503_on_every_write_and_ready_says_so(
    infra: Any, tmp_path: Path, full_redis: redis.Redis
) -> None:
    env = processes.service_env(infra.env(), prefix="full" + uuid.uuid4().hex[:6])
    api = processes.api(env, tmp_path).start().wait_ready()
    rid = "full-" + uuid.uuid4().hex[:8]
    headers = {"X-API-Key": processes.API_KEY}
    try:
        with httpx.Client(base_url=api.url, headers=headers, timeout=20) as http:
            known = {"request_id": f"{rid}-known", "media_url": "http://127.0.0.1:9/a.wav"}
            assert http.post(SUBMIT, json=known).status_code == 202
            assert http.get("/ready").status_code == 200
            full_redis.config_set("maxmemory", 1)  # every write is now refused with OOM
            for method, path, kwargs in requests(rid):
                assert_json_503(resp := http.request(method, path, **kwargs))
                if path == SUBMIT:  # nothing was published: the client may trust "refused"
                    assert resp.headers["X-Submit-Outcome"] == "refused", resp.headers
            ready = http.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["redis"] == "refuses writes: OutOfMemoryError", ready.json()
            # Reads still work: a known job is still served.
            assert http.get(f"{SUBMIT}/{rid}-known").status_code == 200
    finally:
        api.stop()
    assert "Traceback" not in api.log_text()


def test_redis_down_answers_json_503_on_every_route(infra: Any, tmp_path: Path) -> None:
    env = processes.service_env(infra.env(), prefix="down" + uuid.uuid4().hex[:6])
    env["REDIS_PORT"] = str(processes.free_port())  # nothing listens there
    api = processes.api(env, tmp_path).start().wait_ready()
    rid = "down-" + uuid.uuid4().hex[:8]
    try:
        with httpx.Client(
            base_url=api.url, headers={"X-API-Key": processes.API_KEY}, timeout=30
        ) as http:
            for method, path, kwargs in [
                *requests(rid),
                ("GET", f"{SUBMIT}/{rid}", {}),
                ("GET", f"{SUBMIT}/{rid}?format=srt", {}),
            ]:
                assert_json_503(resp := http.request(method, path, **kwargs))
                if method == "POST" and path == SUBMIT:
                    assert resp.headers["X-Submit-Outcome"] == "refused", resp.headers
            ready = http.get("/ready")
            assert ready.status_code == 503 and ready.json()["redis"].startswith("unreachable")
    finally:
        api.stop()
