"""`/metrics` of the API process: Prometheus text, no key, `stt_*` names."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stt_testing import processes

pytestmark = pytest.mark.infra
REQUESTS = 40
SCRAPES = 6


def scrape(api: processes.Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}."""
    resp = httpx.get(f"{api.url}/metrics", timeout=10)  # no key
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_submit_moves_the_counters(api: processes.Api, client: httpx.AsyncClient) -> None:
    before = scrape(api)
    rid = "met-" + uuid.uuid4().hex[:10]
    body = {"request_id": rid, "media_url": "http://minio-host/bucket/a.mp3"}
    assert (await client.post("/api/v1/transcribe", json=body)).status_code == 202
    assert (await client.post("/api/v1/transcribe", json=body)).status_code == 202  # duplicate
    assert (await client.get(f"/api/v1/transcribe/{rid}")).status_code == 200
    after = scrape(api)
    assert value(after, "stt_jobs_submitted_total") - value(before, "stt_jobs_submitted_total") == 1
    post = {"method": "POST", "route": "/api/v1/transcribe", "status": "202"}
    assert (
        value(after, "stt_http_requests_total", **post)
        - value(before, "stt_http_requests_total", **post)
        == 2
    )
    get = {"method": "GET", "route": "/api/v1/transcribe/{request_id}", "status": "200"}
    assert value(after, "stt_http_requests_total", **get) >= 1
    count = value(
        after, "stt_http_request_seconds_count", method="POST", route="/api/v1/transcribe"
    )
    assert count >= 2


async def test_routes_are_labelled_by_template_and_errors_counted(
    api: processes.Api, client: httpx.AsyncClient
) -> None:
    await client.get(f"/api/v1/transcribe/met-missing-{uuid.uuid4().hex[:6]}")
    await client.get("/no/such/path")
    await client.get("/api/v1/transcribe/x", headers={"X-API-Key": "wrong"})
    samples = scrape(api)
    routes = {dict(labels).get("route") for (name, labels) in samples if "http_requests" in name}
    assert not any(r and r.startswith("/api/v1/transcribe/met-") for r in routes)
    missing = {"method": "GET", "route": "/api/v1/transcribe/{request_id}", "status": "404"}
    assert value(samples, "stt_http_requests_total", **missing) >= 1
    unauthorised = missing | {"status": "401"}
    assert value(samples, "stt_http_requests_total", **unauthorised) >= 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(samples, "stt_http_requests_total", **unmatched) >= 1


def test_metrics_and_ready_need_no_key(api: processes.Api) -> None:
    assert httpx.get(f"{api.url}/ready", timeout=10).status_code == 200
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    for name in ("stt_jobs_submitted_total", "stt_http_requests_total", "stt_http_request_seconds"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


async def test_workers_report_the_sum_of_all_processes(
    api_env: dict[str, str], tmp_path: Path
) -> None:
    """`stt api --workers 2`: requests land on both processes (each on a new connection), and
    every scrape, whichever process answers it, counts all of them."""
    port = processes.free_port()
    args = ["api", "--port", str(port), "--workers", "2"]
    api = processes.Api("api-workers", args, api_env, tmp_path, port=port).start().wait_ready()
    try:
        health = {"method": "GET", "route": "/health", "status": "200"}
        before = value(scrape(api), "stt_http_requests_total", **health)

        async def one() -> int:
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as fresh:
                return (await fresh.get("/health")).status_code

        codes = await asyncio.gather(*(one() for _ in range(REQUESTS)))
        assert codes == [200] * REQUESTS

        def counted() -> float:
            return value(scrape(api), "stt_http_requests_total", **health) - before

        deadline = time.monotonic() + 5  # a count lands just after its answer is sent
        while counted() != REQUESTS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        counts = {counted() for _ in range(SCRAPES)}
        assert counts == {REQUESTS}, counts  # one process alone would report its share only
    finally:
        api.stop()
