"""`python -m bench.long_engine MODE AUDIO OUT.json [batch_size]`: the worker's engine path
(bounded decode, then the model) in a process of its own, so its peak RSS can be read.

MODE is "sequential" (`WhisperModel.transcribe`, what the worker runs today) or "batched"
(faster-whisper's `BatchedInferencePipeline`, with its Silero VAD cutting the audio into
chunks of at most 30 s). The model settings come from the same STT_* variables as the worker's.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from pathlib import Path

from faster_whisper import BatchedInferencePipeline, WhisperModel

from stt_common.settings import ModelSettings
from stt_transcriber.decode import decode


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """VmHWM back to the current RSS (Linux: "5" to clear_refs), so loading does not count."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> int:
    mode, audio_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    batch_size = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    settings = ModelSettings()
    model = WhisperModel(
        settings.model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
    )
    gc.collect()
    reset_peak()
    baseline = rss_kib()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    audio = decode(audio_path, 4 * 3600)
    decoded = time.perf_counter()
    if mode == "batched":
        pipeline = BatchedInferencePipeline(model)
        segments, info = pipeline.transcribe(
            audio, language="en", beam_size=settings.beam_size, batch_size=batch_size
        )
    else:
        segments, info = model.transcribe(
            audio, language="en", beam_size=settings.beam_size, vad_filter=settings.vad_filter
        )
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    finished = time.perf_counter()
    done.set()
    sampler.join()
    result = {
        "mode": mode,
        "batch_size": batch_size if mode == "batched" else None,
        "audio_seconds": round(info.duration, 3),
        "seconds": round(finished - started, 3),
        "decode_seconds": round(decoded - started, 3),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_peak_mib": round(max(peak[0], rss_kib("VmHWM")) / 1024, 1),
        "rss_peak_sampled_mib": round(peak[0] / 1024, 1),
        "samples_mib": round(audio.nbytes / 2**20, 1),
        "text": text,
    }
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
