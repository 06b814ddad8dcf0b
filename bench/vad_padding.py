"""How much audio around the voiced chunks the model should hear: WER of the broad real-speech
set (`stt_testing.recordings.speech_set`, 482 reference words once normalised) per condition, for
the old defaults ("before": no VAD, no guards, previous text as prompt) and the current defaults
with several VAD paddings (STT_VAD_PAD_MS), in one process, the configurations taking turns on each
clip so that the machine's load hits all alike.

    python -m bench.vad_padding [--pads 400,400/3000] [--conditions clean,...] [--no-before] OUT

A pad "B/A" is B ms before each voiced chunk and A ms after it (STT_VAD_PAD_BEFORE_MS,
STT_VAD_PAD_MS); "N" is N ms on each side. `--no-before` leaves the old defaults out (their
figures are in bench/results/quality-vad-padding.json).

One JSON line per clip and configuration (errors, reference words, seconds, text), then the
pooled WER per condition on stdout. The figures of STT_VAD_PAD_MS's description and the README
came from two such runs (bench/results/quality-vad-padding.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jiwer

from bench.quality import CONDITIONS, condition
from stt_common.model_files import fetch_model
from stt_common.settings import ModelSettings
from stt_testing import recordings, sounds, speech
from stt_testing.infra import cache_dir
from stt_transcriber.engine import WhisperEngine

BEFORE = {"vad_filter": False, "hallucination_filter": False, "condition_on_previous_text": True}


def padding(pad: str) -> dict[str, Any]:
    """ "N": N ms on each side; "B/A": B ms before each voiced chunk, A ms after it."""
    before, _, after = pad.rpartition("/")
    return {"vad_pad_ms": int(after), "vad_pad_before_ms": int(before or after)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vad_padding")
    parser.add_argument("out", type=Path)
    parser.add_argument("--pads", default="400,1500")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args(argv)
    cache = cache_dir()
    model = str(fetch_model(cache))
    base = ModelSettings(cpu_threads=2)
    configs: dict[str, dict[str, Any]] = ({} if args.no_before else {"before": BEFORE}) | {
        f"pad{pad}": padding(pad) for pad in args.pads.split(",")
    }
    engines = {name: WhisperEngine(model, base.model_copy(update=u)) for name, u in configs.items()}
    clips = recordings.speech_set(cache)
    totals: dict[tuple[str, str], list[float]] = {}
    workdir = args.out.parent / "vad-padding-wav"
    workdir.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as out:
        for cond in args.conditions.split(","):
            for rec in clips:
                audio = condition(rec.audio, cond)
                path = sounds.write_wav(audio, workdir / f"{cond}-{rec.name}.wav")
                reference = speech.normalise(rec.text)
                for name, engine in engines.items():
                    started = time.perf_counter()
                    result = engine.transcribe(path, "en")
                    seconds = time.perf_counter() - started
                    m = jiwer.process_words(reference, speech.normalise(result.text) or "<empty>")
                    errors = m.substitutions + m.deletions + m.insertions
                    words = len(reference.split())
                    total = totals.setdefault((name, cond), [0, 0, 0.0, 0.0])
                    total[0] += errors
                    total[1] += words
                    total[2] += seconds
                    total[3] += audio.size / sounds.RATE
                    row = {
                        "config": name,
                        "cond": cond,
                        "rec": rec.name,
                        "errors": errors,
                        "words": words,
                        "seconds": round(seconds, 2),
                        "audio": round(audio.size / sounds.RATE, 2),
                        "speech_seconds": result.speech_seconds,
                        "text": result.text,
                    }
                    out.write(json.dumps(row) + "\n")
                    out.flush()
            print(
                cond,
                {
                    name: f"{e:.0f}/{w:.0f} = {e / w:.1%}, rtf {s / a:.3f}"
                    for (name, c), (e, w, s, a) in totals.items()
                    if c == cond
                },
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
