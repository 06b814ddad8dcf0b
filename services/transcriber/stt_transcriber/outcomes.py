"""What one run of a job ends in, and the events built from it: pure functions, no I/O.

`JobRunner.execute` returns a `JobOutcome`; the worker only publishes what it says. `Finished`
holds the result event (COMPLETED, or FAILED for good); `Transient` a failure that may pass,
which the worker sends to the next retry topic as `retry_of(job, due)` and tells pollers about
with `retrying(progress, job, delay, error)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from stt_common.messages import ResultEvent, SubmitEvent
from stt_transcriber.errors import JobError


@dataclass(frozen=True)
class Finished:
    result: ResultEvent


@dataclass(frozen=True)
class Transient:
    error: JobError


JobOutcome: TypeAlias = Finished | Transient


def retry_of(job: SubmitEvent, due: datetime) -> SubmitEvent:
    """The job's next attempt, for a retry topic: it waits there until `due`."""
    return job.model_copy(update={"attempt": job.attempt + 1, "not_before": due})


def retrying(progress: ResultEvent, job: SubmitEvent, delay: float, error: JobError) -> ResultEvent:
    """The PROCESSING event (stage `retrying`) that tells pollers why and when it runs again."""
    note = f"retrying in {delay:g}s after: {error.message}"
    return progress.model_copy(update={"attempt": job.attempt + 1, "error": note})
