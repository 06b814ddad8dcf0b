"""What bounds cross-job batching on this machine: the model's own cost per clip, split into the
encoder pass and the decoder (`generate`), at each batch size, in one process.

The same prepared clips (the `short` scenario's 10-60 s real speech, cut into <= 30 s clips by
the worker's own `batch_clips.prepare`) go through `BatchEngine.run` in groups of N, for each N
of the sizes, the sizes in a shuffled order each repeat. Each encoder and generate call is
timed (wall and this process's CPU seconds), so the report can say where a batch saves time and
where it cannot: every clip is one 30 s window for the encoder whatever the batch, so a batch can
only save the per-call cost and what the cores leave idle between calls.

    python -m bench.batch_profile [CLIPS] [REPEATS] [SIZES]   # defaults: 16 2 1,2,4,8

Writes bench/results/batch-profile.json.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.short_clips import make_clips
from bench.stack import RESULTS, ModelConfig
from stt_common.model_files import fetch_model
from stt_common.settings import ModelSettings
from stt_testing.infra import cache_dir
from stt_transcriber.batch_clips import BatchItem, Prepared
from stt_transcriber.batch_engine import BatchEngine
from stt_transcriber.engine import WhisperEngine

Timings = dict[str, list[float]]  # stage -> [wall, cpu] summed


def timed(stages: Timings, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            spent = stages.setdefault(name, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    return wrapper


class TimedModel:
    """ctranslate2's Whisper, its generate and detect_language calls timed (its methods are
    read-only, so it is wrapped rather than patched)."""

    def __init__(self, model: Any, stages: Timings) -> None:
        self._model = model
        self.generate = timed(stages, "generate", model.generate)
        self.detect_language = timed(stages, "detect_language", model.detect_language)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def run_size(batch: BatchEngine, prepared: list[Prepared], size: int) -> tuple[float, float]:
    """All the clips in groups of `size`; (wall, cpu) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(prepared), size):
        for outcome in batch.run(prepared[start : start + size]):
            if isinstance(outcome, BaseException):
                raise outcome
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 16
    repeats = int(argv[1]) if len(argv) > 1 else 2
    sizes = [int(s) for s in argv[2].split(",")] if len(argv) > 2 else [1, 2, 4, 8]
    cache = cache_dir()
    config = ModelConfig(path=str(fetch_model(cache)))
    settings = ModelSettings(
        cpu_threads=config.cpu_threads, beam_size=config.beam_size, vad_pad_ms=config.vad_pad_ms
    )
    engine = WhisperEngine(config.path, settings)
    batch = BatchEngine(engine)
    clips = make_clips(count, cache)
    prepared = [batch.prepare(BatchItem(path=c.path, language="en")) for _, c in clips]
    windows = sum(len(p.clips) for p in prepared)
    audio = sum(p.duration for p in prepared)
    stages: Timings = {}
    batch.whisper.encode = timed(stages, "encode", batch.whisper.encode)  # type: ignore[method-assign]
    batch.whisper.model = TimedModel(batch.whisper.model, stages)
    run_size(batch, prepared[:2], 2)  # first-call allocations
    rows: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    for repeat in range(repeats):
        order = list(sizes)
        random.Random(repeat).shuffle(order)
        for size in order:
            stages.clear()
            wall, cpu = run_size(batch, prepared, size)
            row = {"wall_s": wall, "cpu_s": cpu} | {
                f"{name}_{kind}_s": spent[i]
                for name, spent in stages.items()
                for i, kind in enumerate(("wall", "cpu"))
            }
            rows[size].append(row)
            print(repeat, size, {k: round(v, 2) for k, v in row.items()}, flush=True)

    def per_clip(size: int) -> dict[str, float]:
        keys = rows[size][0].keys()
        return {k: round(statistics.median(r[k] for r in rows[size]) / windows, 3) for k in keys}

    out = {
        "what": (
            "python -m bench.batch_profile: the short scenario's clips through BatchEngine.run "
            "in groups of N, in one process; seconds per 30 s clip (median over repeats); "
            "encode and generate are the model's calls, the rest is Python and the guards"
        ),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "jobs": count,
        "clips": windows,
        "audio_seconds": round(audio, 1),
        "repeats": repeats,
        "cpu_threads": config.cpu_threads,
        "per_clip_seconds": {str(n): per_clip(n) for n in sizes},
        "speedup_vs_1": {
            str(n): round(
                statistics.median(r["wall_s"] for r in rows[sizes[0]])
                / statistics.median(r["wall_s"] for r in rows[n]),
                3,
            )
            for n in sizes
        },
    }
    print(json.dumps(out, indent=1))
    (RESULTS / "batch-profile.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
