"""Uploads in progress in this process: the bound on the memory uploads may take (part buffers)."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class Refusal(enum.Enum):
    KEY_BUSY = "key"  # the key has STT_UPLOADS_PER_KEY uploads in progress
    PROCESS_FULL = "process"  # this process has STT_UPLOADS_MAX_ACTIVE in progress


class UploadSlots:
    """Uploads in progress in this process, per API key and in all. Each may buffer up to one
    8 MiB part, so the total bounds the memory uploads take (STT_UPLOADS_MAX_ACTIVE), and the
    per-key bound keeps one key's slow uploads from taking all of it (STT_UPLOADS_PER_KEY)."""

    def __init__(self, per_key: int, max_active: int) -> None:
        self.per_key = per_key
        self.max_active = max_active
        self.active: Counter[str] = Counter()

    @contextmanager
    def hold(self, identity: str) -> Iterator[Refusal | None]:
        """Yields None while holding a slot, or why there is none (holding nothing)."""
        if self.active[identity] >= self.per_key:
            yield Refusal.KEY_BUSY
            return
        if self.active.total() >= self.max_active:
            yield Refusal.PROCESS_FULL
            return
        self.active[identity] += 1
        try:
            yield None
        finally:
            self.active[identity] -= 1
            if not self.active[identity]:
                del self.active[identity]
