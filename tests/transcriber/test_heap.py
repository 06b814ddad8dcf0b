"""The allocator settings the transcriber makes at start: what it sets, and what it leaves."""

from __future__ import annotations

import pytest

from stt_transcriber import heap


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    made: list[tuple[int, int]] = []
    monkeypatch.setattr(heap, "_mallopt", lambda param, value: made.append((param, value)) or 1)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return made


def test_sequential_mode_gets_two_arenas_and_a_fixed_threshold(
    calls: list[tuple[int, int]],
) -> None:
    heap.tune(batched=False)
    assert calls == [(heap.M_ARENA_MAX, 2), (heap.M_MMAP_THRESHOLD, 4 * 1024 * 1024)]


def test_batched_mode_keeps_glibc_threshold(calls: list[tuple[int, int]]) -> None:
    heap.tune(batched=True)
    assert calls == [(heap.M_ARENA_MAX, 2)]


def test_the_operators_settings_win(
    calls: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    heap.tune(batched=False)
    assert calls == []


def test_release_is_safe_to_call() -> None:
    heap.release()  # glibc: trims; elsewhere: nothing
