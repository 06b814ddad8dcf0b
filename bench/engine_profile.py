"""Where the worker's engine spends more than bare faster-whisper: the bench's 60 s file through
bare faster-whisper (as `bench.overhead.Bare` calls it) and through `WhisperEngine` with one
feature at a time taken away, in one process, the configurations in a shuffled order each
repeat. Both wall and CPU seconds (process_time) are printed: on a loaded machine the CPU
seconds are the steadier figure (the wall time of the same call varied 2x under load 15).

    python -m bench.engine_profile [REPEATS]

* engine: the defaults (VAD, guards, language detection on the first encoder output);
* engine_nodetect: without the detection (its decoder step);
* engine_noguard: STT_HALLUCINATION_FILTER=false;
* engine_pad400: STT_VAD_PAD_MS=400 (the padding before STT_VAD_PAD_BEFORE_MS: 400 ms on each
  side).

The engine's own stages (decode, VAD) are timed inside its calls and printed per repeat.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from faster_whisper import WhisperModel

from bench.media import make_speech
from bench.stack import ModelConfig
from stt_common.model_files import fetch_model
from stt_common.settings import ModelSettings
from stt_testing.infra import cache_dir
from stt_transcriber import engine as engine_module
from stt_transcriber import voice
from stt_transcriber.engine import WhisperEngine


def main(argv: list[str]) -> int:
    repeats = int(argv[0]) if argv else 4
    cache = cache_dir()
    config = ModelConfig(path=str(fetch_model(cache)))
    path = make_speech(60.0, cache).path
    settings = ModelSettings(
        cpu_threads=config.cpu_threads,
        beam_size=config.beam_size,
        vad_pad_ms=config.vad_pad_ms,
        vad_pad_before_ms=config.vad_pad_before_ms,
    )
    bare = WhisperModel(config.path, device="cpu", compute_type="int8", cpu_threads=2)

    def run_bare() -> None:
        segments, _ = bare.transcribe(
            str(path),
            language="en",
            beam_size=config.beam_size,
            vad_filter=True,
            vad_parameters={"threshold": config.vad_threshold, "speech_pad_ms": config.vad_pad_ms},
            condition_on_previous_text=False,
        )
        list(segments)

    engines = {
        "engine": WhisperEngine(config.path, settings),
        "engine_nodetect": WhisperEngine(config.path, settings),
        "engine_noguard": WhisperEngine(
            config.path, settings.model_copy(update={"hallucination_filter": False})
        ),
        "engine_pad400": WhisperEngine(
            config.path, settings.model_copy(update={"vad_pad_ms": 400})
        ),
    }
    engines["engine_nodetect"].model.detect_next = lambda: None  # type: ignore[method-assign]
    stages: dict[str, float] = {}

    def timed(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    voice.found_chunks = timed("vad", voice.found_chunks)  # type: ignore[method-assign]
    engine_module.decode = timed("decode", engine_module.decode)  # type: ignore[method-assign]
    calls: dict[str, Callable[[], object]] = {"bare": run_bare} | {
        name: (lambda e=e: e.transcribe(path, "en")) for name, e in engines.items()
    }
    for call in calls.values():
        call()  # first-call allocations
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(repeats):
        order = list(calls)
        random.Random(repeat).shuffle(order)
        for name in order:
            stages.clear()
            w, c = time.perf_counter(), time.process_time()
            calls[name]()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
            if name == "engine":
                print("  engine stages", {k: round(v, 3) for k, v in stages.items()}, flush=True)
        print(repeat, {n: (round(wall[n][-1], 2), round(cpu[n][-1], 2)) for n in calls}, flush=True)

    def ratios(values: dict[str, list[float]]) -> dict[str, float]:
        return {
            name: round(
                statistics.median(v / b for v, b in zip(vs, values["bare"], strict=True)), 3
            )
            for name, vs in values.items()
            if name != "bare"
        }

    print(
        json.dumps(
            {
                "wall_median_s": {n: round(statistics.median(v), 3) for n, v in wall.items()},
                "cpu_median_s": {n: round(statistics.median(v), 3) for n, v in cpu.items()},
                "wall_ratio_to_bare": ratios(wall),
                "cpu_ratio_to_bare": ratios(cpu),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
