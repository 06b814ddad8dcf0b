"""When a client should poll a PROCESSING job again: an estimate of the time it has left.

* While transcribing, the worker running the job publishes an `eta`: the moment transcription
  began plus the time its own recent jobs say a file of this length takes (a fixed cost plus a
  cost per second of audio, learned on the same model, hardware and load:
  `stt_transcriber.speed`), refined as the job reports progress by the pace it keeps. While more
  than a second is left the hint is half of it, so the next poll sees a refined ETA before an
  early estimate could make the client wait too long; within the last second it is the time
  left (plus the ~30 ms the result takes to reach Redis), at least 0.1 s. Once the ETA has
  passed, a tenth of the overrun: a late job is polled often at first, less as it runs on.
* Without an ETA (a worker's first job, or before the audio is probed):
  remaining ≈ duration × (1 − progress) × rtf − (time since that progress was reported), with
  `rtf` starting at STT_POLL_RTF and following the jobs this API process has seen complete,
  clamped to [0.5, 30] s; 2 s before the audio has been probed.

Clients that would rather not guess can long-poll with `?wait=`. A poll without `?wait=` of a
job whose ETA is at most STT_POLL_HOLD_SECONDS away is held until the job ends (`hold_seconds`):
a client that sleeps a fixed interval between polls and ignores the hint (the integration
guide's own client sleeps 3 s) then learns of the result when it happens, not one interval late.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Final

from stt_common.messages import JobRecord, JobStatus, Stage

DEFAULT_SECONDS: Final = 2.0
MIN_SECONDS: Final = 0.5
MAX_SECONDS: Final = 30.0
DEFAULT_RTF: Final = 0.15
SMOOTHING: Final = 0.2  # weight of the newest completed job in the moving average
ETA_MIN_SECONDS: Final = 0.1
ETA_MARGIN_SECONDS: Final = 0.03  # result event → projector → Redis: ~15 ms measured
STEP_SECONDS: Final = 0.05
ETA_OVERRUN_SHARE: Final = 0.1
ETA_APPROACH_SECONDS: Final = 1.0  # above this, wait half the time left and look again
REMEMBERED_JOBS: Final = 4096  # completed jobs already learnt from; the oldest is forgotten first


class PollAdvisor:
    """The estimate, and the one thing it learns: the real-time factor of completed jobs.

    Invariant: each completed job counts once, however often it is polled (`observe` remembers
    the last REMEMBERED_JOBS request ids), so a client polling one job in a loop cannot drag the
    estimate; `poll_after` only reads.
    """

    def __init__(self, rtf: float = DEFAULT_RTF, hold_window: float = 0.0) -> None:
        self.rtf = rtf
        self.hold_window = hold_window  # STT_POLL_HOLD_SECONDS: see `hold_seconds`
        self._learnt: OrderedDict[str, None] = OrderedDict()

    def observe(self, record: JobRecord) -> None:
        """Learn the real-time factor from a COMPLETED job, the first time it is seen."""
        if record.status is not JobStatus.COMPLETED or not record.duration:
            return
        if not record.processing_time or record.job_id in self._learnt:
            return
        self._learnt[record.job_id] = None
        if len(self._learnt) > REMEMBERED_JOBS:
            self._learnt.popitem(last=False)
        measured = record.processing_time / record.duration
        if 0 < measured < 100:
            self.rtf += SMOOTHING * (measured - self.rtf)

    def poll_after(self, record: JobRecord, now: datetime | None = None) -> float | None:
        """Seconds until the next poll is worth it; None once the job is COMPLETED or FAILED.
        Reads only: learning from a completed job is `observe`'s."""
        if record.status is not JobStatus.PROCESSING:
            return None
        now = now or datetime.now(UTC)
        if record.eta is not None and record.stage is Stage.TRANSCRIBING and self.hold_window > 0:
            # A poll that arrives with the ETA within the window is held until the job ends, so
            # aim half a window before the ETA: an estimate that is late by up to half the window
            # still ends inside the held poll, and one that is early costs nothing.
            before_eta = (record.eta - now).total_seconds() - self.hold_window / 2
            return _steps_up(min(MAX_SECONDS, max(ETA_MIN_SECONDS, before_eta)))
        if record.eta is not None and record.stage is Stage.TRANSCRIBING:
            left = (record.eta - now).total_seconds() + ETA_MARGIN_SECONDS
            if left > ETA_APPROACH_SECONDS:
                wait = max(ETA_APPROACH_SECONDS, left / 2)
            else:
                wait = left if left > 0 else -left * ETA_OVERRUN_SHARE
            return _steps_up(min(MAX_SECONDS, max(ETA_MIN_SECONDS, wait)))
        if not record.duration or record.progress is None:
            return DEFAULT_SECONDS
        left = record.duration * (1.0 - min(1.0, max(0.0, record.progress))) * self.rtf
        age = (now - record.updated_at).total_seconds()
        return round(min(MAX_SECONDS, max(MIN_SECONDS, left - max(0.0, age))), 1)


def hold_seconds(record: JobRecord, window: float, now: datetime | None = None) -> float:
    """How long a poll (without `?wait=`) of `record` is held for the job to end: `window` while
    the job transcribes and its ETA is at most `window` away (or past), else 0 (answer now).

    Invariant: never more than `window`, so a held poll stays under the client's request
    timeout whatever the ETA's error; a job with no ETA (queued, downloading, a worker's first
    job) is never held.
    """
    if window <= 0 or record.status is not JobStatus.PROCESSING:
        return 0.0
    if record.eta is None or record.stage is not Stage.TRANSCRIBING:
        return 0.0
    left = (record.eta - (now or datetime.now(UTC))).total_seconds()
    return window if left <= window else 0.0


def _steps_up(seconds: float) -> float:
    """Rounded up to STEP_SECONDS, so the poll lands after the estimate, not just before it."""
    steps = 1 / STEP_SECONDS
    return math.ceil(round(seconds * steps, 6)) / steps


def retry_after_header(seconds: float) -> str:
    """The HTTP header wants whole seconds."""
    return str(max(1, math.ceil(seconds)))
