"""A stand-in `Engine` for fast tests of the worker: deterministic, optionally slow or failing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from stt_common.messages import Segment
from stt_transcriber.audio import probe
from stt_transcriber.batch_clips import CLIP_SECONDS, BatchItem, Clip, Prepared
from stt_transcriber.batch_engine import ItemResult
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import Transcript, stop_if
from stt_transcriber.errors import JobError

_PCM_BYTES_PER_SECOND = 32_000  # 16 kHz mono 16-bit, for files PyAV cannot read
_STEPS = 10


class FakeEngine:
    """Returns "fake transcript of <file name>" after `delay` seconds, or raises `fail_with`
    half way through.

    `calls` records (path, language) of every call, and `options` the DecodeOptions of each,
    for assertions.
    """

    def __init__(self, delay: float = 0.0, fail_with: JobError | None = None) -> None:
        self.delay = delay
        self.fail_with = fail_with
        self.load_seconds = 0.0
        self.calls: list[tuple[Path, str | None]] = []
        self.options: list[DecodeOptions] = []
        self._lock = threading.Lock()

    def transcribe(
        self,
        path: Path,
        language: str | None,
        on_progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        options: DecodeOptions | None = None,
    ) -> Transcript:
        with self._lock:
            self.calls.append((path, language))
            self.options.append(options or DecodeOptions())
        try:
            duration = probe(path, float("inf"))
        except JobError:
            duration = path.stat().st_size / _PCM_BYTES_PER_SECOND
        for step in range(1, _STEPS + 1):  # progress in steps, like segments arriving
            if self.delay > 0:
                time.sleep(self.delay / _STEPS)
            stop_if(should_stop)
            if self.fail_with is not None and step > _STEPS // 2:
                raise self.fail_with  # half way through, as a real failure would be
            if on_progress is not None:
                on_progress(step / _STEPS)
        return _transcript(path, language, duration)


def _transcript(path: Path, language: str | None, duration: float) -> Transcript:
    detected = language in (None, "", "auto")
    text = f"fake transcript of {path.name}"
    return Transcript(
        text=text,
        segments=[Segment(start=0.0, end=round(duration, 3), text=text)],
        duration=duration,
        language="en" if detected else str(language),
        language_probability=0.99 if detected else 1.0,
        confidence=0.9,
        speech_seconds=duration,
        detected_language="en" if detected else str(language),
        language_mismatch=False,
    )


class FakeManyEngine:
    """The batched engine's stand-in (`batcher.ManyEngine`) over a `FakeEngine`: one batch takes
    the fake's `delay` once, whatever its size, as a batched model call would take little more
    than one job's. A file for which `fail_if` is true fails when prepared, alone.

    `batches` records the files of every batch run, for assertions."""

    def __init__(self, fake: FakeEngine) -> None:
        self.fake = fake
        self.fail_if: Callable[[Path], bool] = lambda path: False
        self.batches: list[list[Path]] = []

    def prepare(self, item: BatchItem) -> Prepared:
        stop_if(item.should_stop)
        if self.fail_if(item.path):
            raise JobError("The media could not be decoded", "invalid_media")
        try:
            duration = probe(item.path, float("inf"))
        except JobError:
            duration = item.path.stat().st_size / _PCM_BYTES_PER_SECOND
        # As the real one cuts: a clip per started 30 s (no features: the fake model needs none).
        clips = [
            Clip(np.zeros((80, 0), np.float32), [], min(CLIP_SECONDS, duration - start))
            for start in np.arange(0.0, duration, CLIP_SECONDS)
        ]
        return Prepared(item, np.zeros(0, np.float32), duration, clips, duration)

    def run(self, jobs: Sequence[Prepared]) -> list[ItemResult]:
        with self.fake._lock:
            self.batches.append([p.item.path for p in jobs])
        if self.fake.delay > 0:
            time.sleep(self.fake.delay)
        outcomes: list[ItemResult] = []
        for prepared in jobs:
            item = prepared.item
            try:
                stop_if(item.should_stop)
                outcomes.append(_transcript(item.path, item.language, prepared.duration))
            except JobError as exc:
                outcomes.append(exc)
        return outcomes
