"""The Redis round trips of the hottest routes, counted (issue 14: one API process had lost
about a third of its submit rate to two extra round trips per submit). A new submit takes two:
the create, checked against the store's epoch marker in the same script, and the confirm, which
indexes the job in the same script; a resubmit of a known job one, a poll one. The rates are
measured in bench/ (`python -m bench api`, which also reports Redis calls per request); this
pins the count, so that a change that adds a round trip to every request is seen in review.
Fast tier (fakeredis: the same redis-py client, its connection counted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio.connection import AbstractConnection

from stt_common.settings import Settings
from stt_testing.fakes import InProcessApi, in_process_api
from tests.api import in_process
from tests.api.in_process import KEY, job

client = in_process.client
SUBMIT = "/api/v1/transcribe"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> InProcessApi:
    monkeypatch.chdir(tmp_path)  # no ./.env
    monkeypatch.setenv("STT_API_KEYS", KEY)
    # No rate limiter: its counts go to Redis in the background, whenever they are due.
    monkeypatch.setenv("STT_RATE_LIMIT_PER_MINUTE", "0")
    return in_process_api(Settings())


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every command (or pipeline) the API's Redis client writes, in order."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        parts = command if isinstance(command, list) else [command]
        sent.append(b"".join(bytes(p) for p in parts)[:60])  # enough to name it in a failure
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield sent


async def test_a_new_submit_takes_two_round_trips_a_known_one_and_a_poll_one(
    client: httpx.AsyncClient, round_trips: list[bytes]
) -> None:
    await client.post(SUBMIT, json=job("rt-warm"))  # scripts loaded once per process
    round_trips.clear()
    assert (await client.post(SUBMIT, json=job("rt-1"))).status_code == 202
    assert len(round_trips) == 2, round_trips
    round_trips.clear()
    known = await client.post(SUBMIT, json=job("rt-1"))
    assert known.status_code == 202 and known.json()["status"] == "PROCESSING"
    assert len(round_trips) == 1, round_trips
    round_trips.clear()
    assert (await client.get(f"{SUBMIT}/rt-1")).status_code == 200
    assert len(round_trips) == 1, round_trips
