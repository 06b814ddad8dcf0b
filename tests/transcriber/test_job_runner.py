"""The job runner's progress events: duration, and an ETA from the worker's own speed."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stt_common.messages import ResultEvent, SubmitEvent
from stt_common.settings import FetchSettings, MinioSettings
from stt_testing.media_server import MediaServer
from stt_transcriber.batcher import Batcher, BatchLimits
from stt_transcriber.fake_engine import FakeEngine, FakeManyEngine
from stt_transcriber.job_runner import Eta, JobRunner
from stt_transcriber.speed import SpeedModel

CLIP_SECONDS = 4.0
ENGINE_SECONDS = 0.4  # the fake engine's time per job: a real-time factor of 0.1


@pytest.fixture
def media(tmp_path: Path) -> Iterator[MediaServer]:
    root = tmp_path / "media"
    root.mkdir()
    with wave.open(str(root / "clip.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\0\0" * int(16_000 * CLIP_SECONDS))
    with MediaServer(root) as server:
        yield server


def runner(tmp_path: Path) -> JobRunner:
    fetch = FetchSettings(allow_hosts=["127.0.0.1"], max_bytes=10 * 1024 * 1024)
    minio = MinioSettings()
    return JobRunner(FakeEngine(delay=ENGINE_SECONDS), fetch, minio, tmp_path / "work", "w-1")


async def run_once(job_runner: JobRunner, url: str, rid: str) -> list[ResultEvent]:
    events: list[ResultEvent] = []
    job = SubmitEvent(request_id=rid, media_url=url, language="en")

    async def report(stage: str, share: float | None) -> None:
        events.append(job_runner.progress(job, stage, share))

    events.append(await job_runner.run(job, report))
    return events


async def test_first_job_has_no_eta_then_the_measured_speed_gives_one(
    tmp_path: Path, media: MediaServer
) -> None:
    job_runner = runner(tmp_path)
    url = f"{media.url}/clip.wav"

    first = await run_once(job_runner, url, "eta-1")
    assert all(e.eta is None for e in first)  # nothing measured yet: no guess
    expected = job_runner.speed.predict(CLIP_SECONDS)
    assert expected == pytest.approx(ENGINE_SECONDS, rel=0.5)

    began = datetime.now(UTC)
    second = await run_once(job_runner, url, "eta-2")
    transcribing = [e for e in second if e.stage == "transcribing"]
    assert transcribing and all(e.eta is not None for e in transcribing)
    assert all(e.duration == pytest.approx(CLIP_SECONDS) for e in transcribing)
    eta = transcribing[0].eta
    assert eta is not None
    ahead = (eta - began).total_seconds()
    assert 0.5 * ENGINE_SECONDS < ahead < 3 * ENGINE_SECONDS
    done = second[-1]
    assert done.eta is None and done.status == "COMPLETED"
    assert job_runner.etas == {}  # forgotten once the job is over


def test_speed_model_separates_fixed_cost_from_per_second_cost() -> None:
    speed = SpeedModel()
    assert speed.predict(60) is None
    speed.observe(8, 0.75)  # a short clip: mostly fixed cost
    assert speed.predict(60) == pytest.approx(60 * 0.75 / 8)  # proportional until lengths vary
    speed.observe(60, 4.7)
    assert speed.predict(60) == pytest.approx(4.7, abs=0.05)
    assert speed.predict(8) == pytest.approx(0.75, abs=0.05)
    for _ in range(30):  # the machine got twice as slow: recent jobs win
        speed.observe(60, 9.4)
        speed.observe(8, 1.5)
    assert speed.predict(60) == pytest.approx(9.4, rel=0.05)


def test_speed_model_ignores_empty_measurements() -> None:
    speed = SpeedModel()
    speed.observe(0, 1.0)
    speed.observe(10, 0)
    assert speed.predict(10) is None


def test_eta_follows_the_pace_the_job_keeps() -> None:
    began = datetime(2026, 1, 1, tzinfo=UTC)
    eta = Eta(began, 10.0)
    assert eta.at == began + timedelta(seconds=10)
    eta.refine(0.5, eta.started + 3.0)  # half done in 3 s: 6 s at this pace
    assert eta.at == began + timedelta(seconds=0.5 * 6 + 0.5 * 10)
    eta.refine(0.9, eta.started + 5.4)
    assert eta.at is not None
    assert (eta.at - began).total_seconds() == pytest.approx(0.9 * 6 + 0.1 * 10)
    unknown = Eta(began, None)
    assert unknown.at is None  # no guess before the first measurement
    unknown.refine(0.25, unknown.started + 2.0)
    assert unknown.at == began + timedelta(seconds=8)


async def test_in_a_batch_the_eta_starts_with_the_batch_and_learns_the_jobs_share(
    tmp_path: Path, media: MediaServer
) -> None:
    """A burst of jobs waits behind each other's batches. Each job's ETA is published once its
    batch goes on the model, and the worker learns each job's share of the model's time, not
    the wait: a lone job after the burst is told about its own time, not the queue's."""
    fake = FakeEngine(delay=ENGINE_SECONDS)  # FakeManyEngine: one batch takes `delay` once
    limits = BatchLimits(size=2, wait=0.0, max_seconds=120.0, prepare_beside_model=True)
    batcher = Batcher(fake, FakeManyEngine(fake), limits)
    fetch = FetchSettings(allow_hosts=["127.0.0.1"], max_bytes=10 * 1024 * 1024)
    job_runner = JobRunner(fake, fetch, MinioSettings(), tmp_path / "work", "w-1", None, batcher)
    url = f"{media.url}/clip.wav"

    burst = await asyncio.gather(*(run_once(job_runner, url, f"burst-{i}") for i in range(8)))
    assert len(batcher.sizes) >= 4  # at most two per batch: most jobs waited behind others
    for events in burst:
        transcribing = [e for e in events if e.stage == "transcribing"]
        assert transcribing[0].eta is None  # not yet on the model: no ETA
    # Each batch took ENGINE_SECONDS for its one or two jobs; the queue took ~4 of them.
    assert job_runner.speed.predict(CLIP_SECONDS) == pytest.approx(
        ENGINE_SECONDS * 0.75, rel=0.5
    )

    lone = await run_once(job_runner, url, "lone")
    announced = [e for e in lone if e.stage == "transcribing" and e.eta is not None]
    assert announced, "the lone job's batch start published no ETA"
    ahead = (announced[0].eta - announced[0].emitted_at).total_seconds()  # type: ignore[operator]
    assert 0 < ahead < 2 * ENGINE_SECONDS  # its own time, not the burst's wall time
