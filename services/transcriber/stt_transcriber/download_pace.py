"""The limits a download is held to while its bytes arrive, whatever the source (http, S3).

Checked at every chunk: the job was not cancelled, the overall deadline
(STT_FETCH_TOTAL_TIMEOUT) has not passed, and, once STT_FETCH_MIN_RATE_GRACE seconds have gone
by, the average rate is at least STT_FETCH_MIN_BYTES_PER_SECOND. A server that trickles bytes
(one a second keeps every read timeout happy) is thus cut off after the grace period, and
neither limit is retried: the same server would hold the worker just as long again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stt_common.cancellation import CANCELLED_MESSAGE, CANCELLED_TYPE
from stt_common.settings import FetchSettings
from stt_transcriber.errors import DOWNLOAD_FAILED, JobError

ShouldStop = Callable[[], bool]


def too_slow_total(fetch: FetchSettings, where: str) -> JobError:
    return JobError(
        f"{DOWNLOAD_FAILED}: not finished after {fetch.total_timeout:g} s "
        f"(STT_FETCH_TOTAL_TIMEOUT) ({where})",
        "timeout",
    )


class Pace:
    def __init__(self, fetch: FetchSettings, where: str, should_stop: ShouldStop | None) -> None:
        self.fetch = fetch
        self.where = where
        self.should_stop = should_stop
        self.started = time.monotonic()
        self.total = 0

    def add(self, size: int) -> None:
        """`size` more bytes arrived; raises JobError when the download must stop."""
        self.total += size
        if self.should_stop is not None and self.should_stop():
            raise JobError(CANCELLED_MESSAGE, CANCELLED_TYPE)
        elapsed = time.monotonic() - self.started
        if elapsed > self.fetch.total_timeout:
            raise too_slow_total(self.fetch, self.where)
        floor = self.fetch.min_bytes_per_second
        if floor and elapsed > self.fetch.min_rate_grace and self.total < floor * elapsed:
            raise JobError(
                f"{DOWNLOAD_FAILED}: {self.total / elapsed:.0f} bytes/s on average, slower than "
                f"{floor} (STT_FETCH_MIN_BYTES_PER_SECOND) ({self.where})",
                "timeout",
            )
