"""Scenario 5: transcript quality. Invented words on audio without speech, word error rate of
real and synthetic speech clean and under music or noise, and the real-time factor, with the old
defaults ("before": no VAD, no guards, each 30 s chunk prompted with the text before it) and
the current ones ("after").

Both configurations are the worker's own engine (`WhisperEngine`) in this process, with the
bench's model settings and one model load each; only `STT_VAD_FILTER`,
`STT_HALLUCINATION_FILTER` and `STT_CONDITION_ON_PREVIOUS_TEXT` differ. The end-to-end path
adds nothing to the transcript (the e2e test `tests/e2e/test_quality.py` submits a non-speech
set through the API).

* Non-speech: every kind of `stt_testing.sounds.NON_SPEECH` (10 s each), submitted with `vi`, `en`
  and `auto`; counted: the words of the transcript (target 0).
* Speech: the real recorded human speech of `stt_testing.recordings.speech_set` (482 reference
  words, four sources: Asterisk prompts, LibriVox, alsa-utils, CMU ARCTIC) and espeak-ng
  English, each padded with 1 s of silence, clean and with synthetic music or pink noise under
  it at 10 dB and 0 dB; the same speech after a 20 s music intro (a social-media clip);
  espeak-ng Vietnamese. WER is pooled per condition (errors over all reference words, both
  reported: at 0 dB one word is 0.2 points).

A third configuration, "pad400", is the current defaults with the VAD padding of the previous
release (faster-whisper's 400 ms on each side, STT_VAD_PAD_MS=400), so the table shows what the
current padding (3 s on each side, 400 ms before speech where longer non-speech is cut) changed.
The configurations take turns on each clip, so a change in the machine's load hits all alike.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from bench.stack import Bench
from stt_common.settings import ModelSettings
from stt_testing import recordings, sounds, speech
from stt_transcriber.decode import decode
from stt_transcriber.engine import WhisperEngine

LANGUAGES = ("vi", "en", "auto")
CONDITIONS = ("clean", "music_10db", "music_0db", "noise_10db", "noise_0db", "music_intro_20s")
QUICK_CONDITIONS = ("clean", "music_10db", "noise_10db")
NON_SPEECH_SECONDS = 10.0


def engine(bench: Bench, **settings: Any) -> WhisperEngine:
    model = bench.model
    base = ModelSettings(
        device=model.device,  # type: ignore[arg-type]
        compute_type=model.compute_type,
        cpu_threads=model.cpu_threads,
        beam_size=model.beam_size,
    )
    return WhisperEngine(model.path, base.model_copy(update=settings))


def words(text: str) -> int:
    return len(speech.normalise(text).split())


def condition(audio: sounds.Audio, name: str) -> sounds.Audio:
    audio = sounds.pad(audio, 1.0, 1.0)
    seconds = audio.size / sounds.RATE
    if name.startswith("music_") and name.endswith("db"):
        return sounds.mix(audio, sounds.music(seconds), float(name[6:-2]))
    if name.startswith("noise_"):
        return sounds.mix(audio, sounds.pink(seconds), float(name[6:-2]))
    if name == "music_intro_20s":
        return np.concatenate([sounds.music(20.0), audio])
    return audio


def measure(
    configs: dict[str, WhisperEngine], workdir: Path, cache: Path, quick: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"non_speech": {}, "speech": {}} for name in configs}
    non_speech = {k: f(NON_SPEECH_SECONDS) for k, f in sounds.NON_SPEECH.items()}
    conditions = QUICK_CONDITIONS if quick else CONDITIONS
    for kind, audio in non_speech.items():
        path = sounds.write_wav(audio, workdir / f"ns-{kind}.wav")
        for name, eng in configs.items():
            row = {}
            for language in LANGUAGES:
                started = time.perf_counter()
                result = eng.transcribe(path, None if language == "auto" else language)
                row[language] = {
                    "words": words(result.text),
                    "text": result.text[:120],
                    "seconds": round(time.perf_counter() - started, 3),
                    "speech_seconds": result.speech_seconds,
                }
            out[name]["non_speech"][kind] = row
            print(f"[quality] {name} {kind}: "
                  + ", ".join(f"{lang} {row[lang]['words']}" for lang in LANGUAGES), flush=True)
    en = decode(speech.make_speech(speech.ENGLISH, "en-us", workdir / "espeak-en.wav"), 60)
    vi = decode(speech.make_speech(speech.VIETNAMESE, "vi", workdir / "espeak-vi.wav"), 60)
    english = [*recordings.speech_set(cache), sounds.Recording("espeak_en", en, speech.ENGLISH)]
    clips: list[tuple[str, str, sounds.Recording, str]] = [
        (cond, rec.name, rec, "en") for cond in conditions for rec in english
    ]
    clips.append(("vietnamese_espeak", "espeak_vi", sounds.Recording("espeak_vi", vi,
                                                                      speech.VIETNAMESE), "vi"))
    for cond, rec_name, rec, language in clips:
        audio = condition(rec.audio, cond) if cond != "vietnamese_espeak" else rec.audio
        path = sounds.write_wav(audio, workdir / f"sp-{cond}-{rec_name}.wav")
        for name, eng in configs.items():
            started = time.perf_counter()
            result = eng.transcribe(path, language)
            seconds = time.perf_counter() - started
            measures = jiwer.process_words(
                speech.normalise(rec.text), speech.normalise(result.text) or "<empty>"
            )
            errors = measures.substitutions + measures.deletions + measures.insertions
            out[name]["speech"].setdefault(cond, []).append({
                "recording": rec_name,
                "reference_words": len(speech.normalise(rec.text).split()),
                "errors": errors,
                "wer": round(measures.wer, 4),
                "audio_seconds": round(audio.size / sounds.RATE, 2),
                "seconds": round(seconds, 3),
                "text": result.text,
            })
            print(f"[quality] {name} {cond} {rec_name}: wer {measures.wer:.3f} "
                  f"rtf {seconds / (audio.size / sounds.RATE):.3f}", flush=True)
    return out


def summarise(config: dict[str, Any]) -> dict[str, Any]:
    ns = config["non_speech"]
    invented = {lang: sum(ns[k][lang]["words"] for k in ns) for lang in LANGUAGES}
    wer, errors, reference_words = {}, {}, {}
    for cond, rows in config["speech"].items():
        ref = sum(r["reference_words"] for r in rows)
        errors[cond], reference_words[cond] = sum(r["errors"] for r in rows), ref
        wer[cond] = round(errors[cond] / ref, 4) if ref else None
    speech_rows = [r for rows in config["speech"].values() for r in rows]
    ns_rows = [ns[k][lang] for k in ns for lang in LANGUAGES]
    return {
        "invented_words": invented,
        "invented_words_total": sum(invented.values()),
        "clips_with_words": sum(1 for r in ns_rows if r["words"]),
        "clips": len(ns_rows),
        "wer": wer,
        "errors": errors,
        "reference_words": reference_words,
        "rtf_speech": round(sum(r["seconds"] for r in speech_rows)
                            / sum(r["audio_seconds"] for r in speech_rows), 4),
        "rtf_non_speech": round(sum(r["seconds"] for r in ns_rows)
                                / (NON_SPEECH_SECONDS * len(ns_rows)), 4),
    }


async def run(bench: Bench) -> dict[str, Any]:
    return await asyncio.to_thread(_run, bench)


def _run(bench: Bench) -> dict[str, Any]:
    configs = {
        "before": engine(bench, vad_filter=False, hallucination_filter=False,
                         condition_on_previous_text=True),
        "pad400": engine(bench, vad_pad_ms=400),
        "after": engine(bench),
    }
    with tempfile.TemporaryDirectory(dir=bench.workdir) as tmp:
        detail = measure(configs, Path(tmp), bench.cache, bench.quick)
    return {
        "settings": {
            "before": "STT_VAD_FILTER=false STT_HALLUCINATION_FILTER=false "
                      "STT_CONDITION_ON_PREVIOUS_TEXT=true",
            "pad400": "the defaults but STT_VAD_PAD_MS=400 (the previous release's padding)",
            "after": "the defaults: STT_VAD_FILTER=true STT_VAD_THRESHOLD=0.35 "
                     "STT_VAD_PAD_MS=3000 STT_VAD_PAD_BEFORE_MS=400 "
                     "STT_HALLUCINATION_FILTER=true "
                     "STT_CONDITION_ON_PREVIOUS_TEXT=false",
        },
        "non_speech_kinds": list(sounds.NON_SPEECH),
        "non_speech_seconds": NON_SPEECH_SECONDS,
        "languages": list(LANGUAGES),
        "summary": {name: summarise(d) for name, d in detail.items()},
        "detail": detail,
    }
