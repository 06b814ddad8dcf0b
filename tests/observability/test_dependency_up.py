"""`stt_dependency_up{dependency="redis"}`: each scrape of the API's /metrics pings Redis, so the
SttRedisUnreachable alert needs nothing that calls /ready: 1 with the real Redis, 0 (and the
scrape still answers) when Redis is not there."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stt_testing import processes

pytestmark = pytest.mark.infra


def redis_up(api: processes.Api) -> float:
    response = httpx.get(f"{api.url}/metrics", timeout=5)  # the probe waits 1 s at most
    assert response.status_code == 200
    (value,) = [
        s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "stt_dependency_up" and s.labels == {"dependency": "redis"}
    ]
    return value


@pytest.mark.parametrize("reachable", [True, False], ids=["redis up", "redis gone"])
def test_each_scrape_reports_whether_redis_answers(
    infra: Any, tmp_path: Path, reachable: bool
) -> None:
    env = processes.service_env(infra.env(), prefix="dep" + uuid.uuid4().hex[:6])
    if not reachable:
        env["REDIS_PORT"] = str(processes.free_port())  # nothing listens there
    api = processes.api(env, tmp_path).start()
    try:
        api.wait_ready()
        assert redis_up(api) == (1.0 if reachable else 0.0)
        assert redis_up(api) == (1.0 if reachable else 0.0)  # set afresh on every scrape
    finally:
        api.stop()
