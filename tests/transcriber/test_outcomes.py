"""`JobRunner.execute` returns a typed outcome, and the retry events are built by pure functions
(`stt_transcriber.outcomes`); the worker only publishes what they say (tests/transcriber/
test_worker_loop.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stt_common.messages import ErrorType, JobStatus, Source, Stage, SubmitEvent
from stt_common.settings import FetchSettings, MinioSettings
from stt_transcriber.errors import JobError
from stt_transcriber.fake_engine import FakeEngine
from stt_transcriber.job_runner import JobRunner
from stt_transcriber.outcomes import Finished, Transient, retry_of, retrying

JOB = SubmitEvent(request_id="o-1", media_url="https://media.example/a.mp3", source=Source.API)


async def nothing(stage: Stage, share: float | None) -> None:
    pass


def runner_failing_with(tmp_path: Path, error: Exception) -> JobRunner:
    runner = JobRunner(FakeEngine(), FetchSettings(), MinioSettings(), tmp_path, "w-o")

    async def run(job: SubmitEvent, report: object) -> None:
        raise error

    runner.run = run  # type: ignore[assignment,method-assign]
    return runner


async def test_a_transient_failure_is_transient_only_while_retries_are_left(tmp_path: Path) -> None:
    busy = JobError("media server busy", "download", transient=True)
    runner = runner_failing_with(tmp_path, busy)
    assert await runner.execute(JOB, nothing, may_retry=True) == Transient(busy)
    last = await runner.execute(JOB, nothing, may_retry=False)
    assert isinstance(last, Finished)
    assert (last.result.status, last.result.error_type) == (JobStatus.FAILED, ErrorType.DOWNLOAD)
    assert last.result.stage is Stage.DONE and last.result.media_url == JOB.media_url


async def test_a_bug_is_a_failed_job_named_internal(tmp_path: Path) -> None:
    outcome = await runner_failing_with(tmp_path, KeyError("x")).execute(JOB, nothing, True)
    assert isinstance(outcome, Finished)
    assert outcome.result.error_type is ErrorType.INTERNAL
    assert outcome.result.error == "Internal error: KeyError"


def test_the_retry_events_are_pure() -> None:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    again = retry_of(JOB, due)
    assert (again.attempt, again.not_before, again.request_id) == (2, due, "o-1")
    runner = JobRunner(FakeEngine(), FetchSettings(), MinioSettings(), Path("."), "w-o")
    note = retrying(
        runner.progress(JOB, Stage.RETRYING, None), JOB, 30, JobError("busy", "timeout")
    )
    assert (note.stage, note.attempt, note.error) == (
        Stage.RETRYING,
        2,
        "retrying in 30s after: busy",
    )
    assert JOB.attempt == 1  # the job itself is not changed
