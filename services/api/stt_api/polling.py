"""When a client should poll a PROCESSING job again: an estimate of the time it has left.

remaining ≈ duration × (1 − progress) × rtf − (time since that progress was reported), where
`rtf` is the transcribers' real-time factor (seconds of work per second of audio). It starts at
STT_POLL_RTF and follows the jobs this API process has seen complete, so the hint calibrates itself
to the model and hardware in use. The answer is clamped to [0.5, 30] s; before the audio has been
probed it is 2 s. Clients that would rather not guess can long-poll with `?wait=`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from stt_common.messages import JobRecord, JobStatus

DEFAULT_SECONDS: Final = 2.0
MIN_SECONDS: Final = 0.5
MAX_SECONDS: Final = 30.0
DEFAULT_RTF: Final = 0.15
SMOOTHING: Final = 0.2  # weight of the newest completed job in the moving average


class PollAdvisor:
    def __init__(self, rtf: float = DEFAULT_RTF) -> None:
        self.rtf = rtf

    def observe(self, record: JobRecord) -> None:
        """Learn the real-time factor from a COMPLETED job."""
        if record.status is JobStatus.COMPLETED and record.duration and record.processing_time:
            measured = record.processing_time / record.duration
            if 0 < measured < 100:
                self.rtf += SMOOTHING * (measured - self.rtf)

    def poll_after(self, record: JobRecord, now: datetime | None = None) -> float | None:
        """Seconds until the next poll is worth it; None once the job is COMPLETED or FAILED."""
        if record.status is not JobStatus.PROCESSING:
            self.observe(record)
            return None
        if not record.duration or record.progress is None:
            return DEFAULT_SECONDS
        left = record.duration * (1.0 - min(1.0, max(0.0, record.progress))) * self.rtf
        age = ((now or datetime.now(UTC)) - record.updated_at).total_seconds()
        return round(min(MAX_SECONDS, max(MIN_SECONDS, left - max(0.0, age))), 1)


def retry_after_header(seconds: float) -> str:
    """The HTTP header wants whole seconds."""
    return str(max(1, math.ceil(seconds)))
