"""Many concurrent requests, and Redis gone, against the real API process: 503, never 500.

Bounded: 1,000 polls and 500 long polls (`wait=2`) at once from one client on loopback, with
the rate limit off; assertions are on status codes only (2 shared cores make timing noise).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stt_testing import processes

pytestmark = pytest.mark.infra
SUBMIT = "/api/v1/transcribe"
POLLS = 1000
LONG_POLLS = 500
JOBS = 20


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    # Default pool settings: the defence must hold as shipped. No transcriber: jobs stay
    # PROCESSING, so every long poll waits its full time.
    return processes.service_env(
        infra.env(), prefix="ovl" + uuid.uuid4().hex[:6], STT_RATE_LIMIT_PER_MINUTE="0"
    )


async def _burst(url: str, paths: list[str], timeout: float) -> Counter[int]:
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=0)
    headers = {"X-API-Key": processes.API_KEY}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout
    ) as http:

        async def one(path: str) -> int:
            try:
                return (await http.get(path)).status_code
            except httpx.TransportError:
                return 0  # no answer at all: counted, and refused by the assertion below

        return Counter(await asyncio.gather(*(one(p) for p in paths)))


async def test_a_thousand_polls_and_five_hundred_long_polls_get_no_5xx_but_503(
    api: processes.Api, client: httpx.AsyncClient
) -> None:
    ids = ["ovl-" + uuid.uuid4().hex[:12] for _ in range(JOBS)]
    for rid in ids:
        body = {"request_id": rid, "media_url": "http://media.example.com/a.mp3"}
        assert (await client.post(SUBMIT, json=body)).status_code == 202
    log_before = len(api.log_text())

    polls = await _burst(api.url, [f"{SUBMIT}/{ids[i % JOBS]}" for i in range(POLLS)], 120)
    long_paths = [f"{SUBMIT}/{ids[i % JOBS]}?wait=2" for i in range(LONG_POLLS)]
    long_polls = await _burst(api.url, long_paths, 120)

    print(f"polls: {dict(polls)}; long polls: {dict(long_polls)}")
    for answers in (polls, long_polls):
        bad = {code: n for code, n in answers.items() if code not in (200, 503)}
        assert not bad, (answers, api.tail())
        assert answers[200] > 0, answers
    assert "Traceback" not in api.log_text()[log_before:]


@pytest.fixture
def api_without_redis(api_env: dict[str, str], tmp_path: Path) -> Iterator[processes.Api]:
    dead_port = str(processes.free_port())  # nothing listens there
    service = processes.api(api_env | {"REDIS_PORT": dead_port}, tmp_path).start().wait_ready()
    yield service
    service.stop()


@pytest.mark.parametrize("path", [f"{SUBMIT}/some-job", f"{SUBMIT}/some-job?wait=1"])
def test_redis_down_is_503_with_retry_after_and_no_traceback(
    api_without_redis: processes.Api, path: str
) -> None:
    headers = {"X-API-Key": processes.API_KEY}
    answers = [
        httpx.get(f"{api_without_redis.url}{path}", headers=headers, timeout=30) for _ in range(3)
    ]
    for resp in answers:
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"].isdigit()
        assert "unavailable" in resp.json()["detail"]
    submit = httpx.post(
        f"{api_without_redis.url}{SUBMIT}",
        json={"request_id": "r1", "media_url": "http://media.example.com/a.mp3"},
        headers=headers,
        timeout=30,
    )
    assert submit.status_code == 503 and "retry-after" in submit.headers
    log = api_without_redis.log_text()
    assert "Traceback" not in log
    assert log.count("job store unavailable") == 1  # one line, not one per request
