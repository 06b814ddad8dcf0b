"""The in-process API fixtures (`create_app` through `httpx.ASGITransport`, fakes for Kafka):
test modules import `api` and `client` from here, so they override the conftest's real-process
`api` with one definition."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stt_common.settings import Settings
from stt_testing.fakes import InProcessApi, in_process_api

KEY = "in-process-key"


def api_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> InProcessApi:
    """An in-process API whose settings are the defaults plus `env` (variable -> value)."""
    monkeypatch.chdir(tmp_path)  # no ./.env
    monkeypatch.setenv("STT_API_KEYS", KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return in_process_api(Settings())


@contextlib.asynccontextmanager
async def client_of(api: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `api`, with its key."""
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers={"X-API-Key": KEY}
    ) as client:
        yield client


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcessApi:
    return api_with(monkeypatch, tmp_path)


@pytest.fixture
async def client(api: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(api) as client:
        yield client


def job(request_id: str) -> dict[str, str]:
    return {"request_id": request_id, "media_url": "https://media.example/a.mp3"}
