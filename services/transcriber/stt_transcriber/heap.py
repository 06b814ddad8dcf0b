"""Gives freed heap memory back to the operating system between the steps of a long job.

glibc keeps what a process frees for its own reuse; after a window's features (hundreds of MB)
are freed, the next window's allocations land elsewhere often enough that the resident size
creeps up window after window. `malloc_trim` hands the free pages back, so the peak follows
what the job holds. Elsewhere (musl, macOS) there is no such call and this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

_trim: Callable[[int], int] | None
try:
    _trim = ctypes.CDLL(None).malloc_trim
except (AttributeError, OSError):
    _trim = None


def release() -> None:
    if _trim is not None:
        _trim(0)
