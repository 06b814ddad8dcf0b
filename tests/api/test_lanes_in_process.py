"""Priority lanes at the API in this process (`create_app` through `httpx.ASGITransport`, the job
store on fakeredis, Kafka a fake publisher): `priority` on submit, the tenant's default lane, and
the topic each lane publishes to. Through the real servers: tests/e2e/test_lanes.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from stt_api.submit_events import SubmitPublisher
from stt_common.messages import Lane, SubmitEvent
from stt_common.settings import ApiSettings, KafkaSettings, Settings, SettingsError, load
from stt_testing.fakes import InProcessApi, in_process_api

BARE, CRAWLER = "bare-key", "crawler-key"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path) -> InProcessApi:
    monkeypatch.chdir(tmp_path)  # no ./.env
    monkeypatch.setenv("STT_API_KEYS", f"{BARE},crawler:{CRAWLER}")
    monkeypatch.setenv("STT_LANE_DEFAULTS", "crawler:batch")
    return in_process_api(Settings())


@pytest.fixture
async def http(api: InProcessApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def job(request_id: str, **extra: object) -> dict[str, object]:
    return {"request_id": request_id, "media_url": "https://media.example/a.mp3", **extra}


async def submit(http: httpx.AsyncClient, key: str, body: dict[str, object]) -> httpx.Response:
    return await http.post("/api/v1/transcribe", json=body, headers={"X-API-Key": key})


async def test_priority_is_the_tenants_default_unless_the_submit_names_one(
    http: httpx.AsyncClient, api: InProcessApi
) -> None:
    for key, rid, extra in [
        (BARE, "l-1", {}),
        (BARE, "l-2", {"priority": "batch"}),
        (CRAWLER, "l-3", {}),
        (CRAWLER, "l-4", {"priority": "interactive"}),
    ]:
        answer = await submit(http, key, job(rid, **extra))
        assert answer.status_code == 202, answer.text
    lanes = {event.request_id: event.priority for event, _ in api.publisher.published}
    assert lanes == {
        "l-1": Lane.INTERACTIVE,
        "l-2": Lane.BATCH,
        "l-3": Lane.BATCH,
        "l-4": Lane.INTERACTIVE,
    }
    # A poll names the lane of batch jobs only: an interactive (seed) answer is unchanged.
    bare = (await http.get("/api/v1/transcribe/l-1", headers={"X-API-Key": BARE})).json()
    assert "priority" not in bare
    batch = (await http.get("/api/v1/transcribe/l-2", headers={"X-API-Key": BARE})).json()
    assert batch["priority"] == "batch"


async def test_an_unknown_priority_is_a_422_naming_the_field(http: httpx.AsyncClient) -> None:
    answer = await submit(http, BARE, job("l-5", priority="urgent"))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "priority" in detail and "'interactive' or 'batch'" in detail


def test_lane_defaults_setting_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STT_LANE_DEFAULTS", "crawler:batch, replays:batch")
    settings = load(ApiSettings)
    assert settings.lane_of("crawler") is Lane.BATCH
    assert settings.lane_of("default") is Lane.INTERACTIVE
    for bad in ("crawler", "crawler:urgent", "Bad Name:batch"):
        monkeypatch.setenv("STT_LANE_DEFAULTS", bad)
        with pytest.raises(SettingsError, match="STT_LANE_DEFAULTS"):
            load(ApiSettings)


async def test_each_lane_publishes_to_its_own_topic() -> None:
    settings = KafkaSettings(topic_submit="t.submit", topic_submit_batch="t.submit.batch")
    publisher = SubmitPublisher(settings)
    sent: list[str] = []

    class Producer:
        async def send(self, topic: str, value: bytes, **_: object) -> object:
            sent.append(topic)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    publisher._publisher = Producer()  # type: ignore[assignment]
    base = {"media_url": "https://media.example/a.mp3"}
    await publisher.publish(SubmitEvent(request_id="p-1", **base))  # type: ignore[arg-type]
    await publisher.publish(SubmitEvent(request_id="p-2", priority=Lane.BATCH, **base))  # type: ignore[arg-type]
    await publisher.publish(SubmitEvent(request_id="p-3", priority=Lane.INTERACTIVE, **base))  # type: ignore[arg-type]
    assert sent == ["t.submit", "t.submit.batch", "t.submit"]
