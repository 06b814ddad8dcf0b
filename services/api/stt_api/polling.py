"""When a client should poll a PROCESSING job again: an estimate of the time it has left.

remaining ≈ duration × (1 − progress) × rtf, where `rtf` (STT_POLL_RTF) is the real-time factor
of the transcribers (seconds of work per second of audio), clamped to [1, 30] s. Before the audio
has been probed (no duration) or while it is queued or downloading, the answer is 2 s.
"""

from __future__ import annotations

import math
from typing import Final

from stt_common.messages import JobRecord, JobStatus

DEFAULT_SECONDS: Final = 2.0
MIN_SECONDS: Final = 1.0
MAX_SECONDS: Final = 30.0
DEFAULT_RTF: Final = 0.15


def poll_after(record: JobRecord, rtf: float = DEFAULT_RTF) -> float | None:
    """Seconds until the next poll is worth it; None once the job is COMPLETED or FAILED."""
    if record.status is not JobStatus.PROCESSING:
        return None
    if not record.duration or record.progress is None:
        return DEFAULT_SECONDS
    remaining = record.duration * (1.0 - min(1.0, max(0.0, record.progress))) * rtf
    return round(min(MAX_SECONDS, max(MIN_SECONDS, remaining)), 1)


def retry_after_header(seconds: float) -> str:
    """The HTTP header wants whole seconds."""
    return str(max(1, math.ceil(seconds)))
