from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from stt_testing import kafka_tools, processes


@pytest.fixture(scope="module")
def api_env(infra: Any) -> dict[str, str]:
    return processes.service_env(infra.env(), prefix="api" + uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def api(
    api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Api]:
    """The API alone: no transcriber, so jobs stay PROCESSING while the contract is checked."""
    service = processes.api(api_env, tmp_path_factory.mktemp("api")).start().wait_ready()
    yield service
    service.stop()


@pytest.fixture
async def client(api: processes.Api) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-API-Key": processes.API_KEY}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=20) as http:
        yield http


async def submit_events(env: dict[str, str], request_id: str, wait: float = 3.0) -> list[bytes]:
    """Every event on the submit topic keyed by `request_id` (reads the whole topic)."""
    records = await kafka_tools.keyed_records(
        env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_SUBMIT"], {request_id}, wait
    )
    return [r.value for r in records if r.value]
