"""Where the voice is: faster-whisper's bundled Silero VAD, run by the engine itself.

The engine runs the VAD rather than passing `vad_filter=True` to faster-whisper so that it knows
the voiced chunks: it reports how much speech there was (`speech_seconds`), gives the model
nothing at all when a window has none (no decoding, so nothing can be invented and no time is
spent), and can ask again, more strictly, whether the audio under one suspicious segment is
speech (`voiced_share`). The model then gets the voiced chunks joined, as faster-whisper's own
`vad_filter` gives them, and the segment times are moved back onto the window's clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import VadOptions, get_speech_timestamps

from stt_transcriber.decode import SAMPLE_RATE, Samples

# faster-whisper's defaults (2 s of silence ends a chunk); the threshold is STT_VAD_THRESHOLD
# (0.35): on the quality bench's non-speech set no frame of noise, hum, music, chords or clicks
# reached 0.3 (white noise peaked at 0.29), while 0.5 dropped the last third of real speech under
# music at 0 dB (0.35 kept all but its last two words). The padding is the engine's own
# (`widen`): STT_VAD_PAD_MS (3000) on each side, so at 0 dB, where the VAD's edges fall inside
# speech or miss its last seconds, the model hears what it hears without a VAD (400 ms on each
# side cost 1.8 WER points there, mostly from audio cut at the start), but where a longer stretch
# is cut (a music intro or interlude) only STT_VAD_PAD_BEFORE_MS (400) of it precedes the speech:
# with 1.5 s or more of the intro the model invented words over it.
SPEECH = VadOptions()
# For one segment's audio: no padding, short pauses count, so padding around a real chunk or a
# burst of music between words does not pass for speech.
STRICT = VadOptions(min_silence_duration_ms=100, speech_pad_ms=0)

Chunk = dict[str, int]  # {"start": sample, "end": sample}, as faster-whisper's VAD gives them
# The VAD runs all the 32 ms frames it is given as one batch (up to 10 000): on a 300 s window
# that is ~110 MiB of activations. Slices of 60 s (a whole number of frames; the model sees
# 64 samples of context per frame, no longer state) bound it whatever the window.
SLICE_SAMPLES = 512 * 1875


def found_chunks(audio: Samples, threshold: float = SPEECH.threshold) -> list[Chunk]:
    """What the VAD finds voiced in `audio`, unpadded, in order; [] when there is no speech. A
    chunk that runs over a slice boundary is found as two touching ones, joined again here."""
    options = dataclasses.replace(SPEECH, threshold=threshold, speech_pad_ms=0)
    chunks: list[Chunk] = []
    for at in range(0, audio.size, SLICE_SAMPLES):
        piece = audio[at : at + SLICE_SAMPLES]
        for found in get_speech_timestamps(piece, options, sampling_rate=SAMPLE_RATE):
            start, end = at + found["start"], at + found["end"]
            if chunks and start <= chunks[-1]["end"]:
                chunks[-1]["end"] = max(chunks[-1]["end"], end)
            else:
                chunks.append({"start": start, "end": end})
    return chunks


def widen(chunks: list[Chunk], pad_ms: int, size: int, before_ms: int | None = None) -> list[Chunk]:
    """`chunks` with `pad_ms` more on each side, within [0, size); chunks that then overlap or
    touch become one (the same audio as faster-whisper's own padding gives). So non-speech
    shorter than 2 * `pad_ms` (`pad_ms` at the start of the audio) is heard whole.

    With `before_ms`, a widened chunk that does not start at 0 (a longer stretch of non-speech
    was cut before it) keeps only min(`pad_ms`, `before_ms`) of that stretch before its first
    voiced chunk: the model hears the end of long non-speech only briefly before speech."""
    pad = pad_ms * SAMPLE_RATE // 1000
    out: list[Chunk] = []
    firsts: list[int] = []  # the first found chunk's start of each widened chunk
    for c in chunks:
        start, end = max(0, c["start"] - pad), min(size, c["end"] + pad)
        if out and start <= out[-1]["end"]:
            out[-1]["end"] = max(out[-1]["end"], end)
        else:
            out.append({"start": start, "end": end})
            firsts.append(c["start"])
    if before_ms is not None:
        before = min(pad_ms, before_ms) * SAMPLE_RATE // 1000
        for c, first in zip(out, firsts, strict=True):
            if c["start"] > 0:
                c["start"] = max(c["start"], first - before)
    return out


def voiced_chunks(
    audio: Samples,
    threshold: float = SPEECH.threshold,
    pad_ms: int = SPEECH.speech_pad_ms,
    before_ms: int | None = None,
) -> list[Chunk]:
    """The voiced chunks of `audio` widened as `widen` does: what the model hears."""
    return widen(found_chunks(audio, threshold), pad_ms, audio.size, before_ms)


@dataclasses.dataclass(frozen=True)
class Speech:
    heard: list[Chunk]  # what the model hears: the found chunks widened by the padding
    found: list[Chunk]  # what the VAD found voiced, unpadded
    seconds: float  # of `found`: a job's `speech_seconds` does not grow with the padding


def speech(audio: Samples, threshold: float, pad_ms: int, before_ms: int | None = None) -> Speech:
    """Where the voice is in `audio`, and what of it the model hears (`widen`)."""
    found = found_chunks(audio, threshold)
    return Speech(widen(found, pad_ms, audio.size, before_ms), found, voiced_seconds(found))


def voiced_seconds(chunks: Iterable[Chunk]) -> float:
    return sum(c["end"] - c["start"] for c in chunks) / SAMPLE_RATE


def join(audio: Samples, chunks: list[Chunk]) -> Samples:
    """The voiced samples only, one after another (a copy: at most the window's size)."""
    if len(chunks) == 1 and chunks[0]["start"] == 0 and chunks[0]["end"] == audio.size:
        return audio
    return np.concatenate([audio[c["start"] : c["end"]] for c in chunks])


def restore(segments: Iterable[WhisperSegment], chunks: list[Chunk]) -> Iterator[WhisperSegment]:
    """Segments timed on the joined audio, moved back onto the original audio's clock."""
    return iter(restore_speech_timestamps(segments, chunks, SAMPLE_RATE))


def voiced_share(
    audio: Samples, start: float, end: float, threshold: float = STRICT.threshold
) -> float:
    """Share (0-1) of audio[start s : end s] the strict VAD (at `threshold`) finds voiced; 0.0
    for no audio."""
    piece = audio[max(0, int(start * SAMPLE_RATE)) : max(0, int(end * SAMPLE_RATE))]
    if piece.size == 0:
        return 0.0
    options = (
        STRICT
        if threshold == STRICT.threshold
        else dataclasses.replace(STRICT, threshold=threshold)
    )
    found = get_speech_timestamps(piece, options, sampling_rate=SAMPLE_RATE)
    return min(1.0, float(sum(c["end"] - c["start"] for c in found)) / piece.size)


def outside(chunks: Iterable[Chunk], start: float, end: float) -> bool:
    """Whether [start s, end s] overlaps none of `chunks` (samples on the same clock)."""
    lo, hi = start * SAMPLE_RATE, end * SAMPLE_RATE
    return all(c["end"] <= lo or c["start"] >= hi for c in chunks)


def inside(chunks: Iterable[Chunk], start: float, end: float) -> bool:
    """Whether [start s, end s] lies within one of `chunks` (samples on the same clock)."""
    lo, hi = start * SAMPLE_RATE, end * SAMPLE_RATE
    return any(c["start"] <= lo and hi <= c["end"] for c in chunks)


def over_padding_only(where: Speech, start: float, end: float) -> bool:
    """Whether a segment timed [start s, end s] lies wholly over the padding: within audio the
    model heard, over none of what the VAD found voiced. A segment timed past what the model
    heard (Whisper's timestamps can drift: one ran 3 s past the end of the audio) says nothing
    about where its words were, so it is not."""
    return outside(where.found, start, end) and inside(where.heard, start, end)
