"""One job made ready for a cross-job batch: decoded, its voice found, cut into <= 30 s clips,
and each clip's log-mel features computed (`prepare`). CPU work the scheduler can do while the
model is busy with the previous batch.

Invariants:
* a clip is some of the job's voiced chunks (voice.py, the same VAD and threshold as the
  sequential engine) joined, at most CLIP_SECONDS long; a chunk longer than that is cut at its
  quietest 100 ms frame near the limit (windows.quiet_cut), so a word is rarely cut in two;
* each clip keeps the chunks it holds, on the whole file's clock, so the model's times on the
  joined clip are moved back onto the file's clock by `voice.restore`;
* a job with no voiced audio has no clip: the model never runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stt_common.settings import ModelSettings
from stt_transcriber import voice
from stt_transcriber.decode import SAMPLE_RATE, Samples, decode
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.windows import FRAME_SECONDS, quiet_cut, speech_span

CLIP_SECONDS = 30.0  # Whisper's input: one encoder pass
# A chunk over CLIP_SECONDS is cut in the last few seconds before the limit.
CUT_SEARCH_SECONDS = 5.0


@dataclass(frozen=True)
class BatchItem:
    """What one job asks of the batched engine."""

    path: Path
    language: str | None  # None or "auto" detects
    options: DecodeOptions = field(default_factory=DecodeOptions)
    should_stop: Callable[[], bool] | None = None


@dataclass
class Clip:
    """Up to 30 s of one job's voiced audio, ready for the encoder."""

    mel: npt.NDArray[np.float32]  # (n_mels, frames <= 3000): log-mel of the joined chunks
    chunks: list[voice.Chunk]  # sample ranges of the file, in order, that the clip joins
    seconds: float  # length of the joined audio


@dataclass
class Prepared:
    item: BatchItem
    audio: Samples  # the whole file, for the hallucination guard's VAD re-check
    duration: float
    clips: list[Clip]
    speech_seconds: float
    where: voice.Speech | None = None  # found and heard chunks, file clock; None without VAD


def split_long(audio: Samples, chunk: voice.Chunk, limit: int) -> list[voice.Chunk]:
    """`chunk` as pieces of at most `limit` samples, each cut at a pause near its end."""
    pieces: list[voice.Chunk] = []
    start, end = chunk["start"], chunk["end"]
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), limit // 2)
    frame = int(FRAME_SECONDS * SAMPLE_RATE)
    while end - start > limit:
        zone_start = start + limit - search
        cut = zone_start + quiet_cut(audio[zone_start : start + limit], frame)
        pieces.append({"start": start, "end": cut})
        start = cut
    pieces.append({"start": start, "end": end})
    return pieces


def group(audio: Samples, chunks: list[voice.Chunk], seconds: float) -> list[list[voice.Chunk]]:
    """Consecutive voiced chunks joined greedily into clips of at most `seconds`."""
    limit = int(seconds * SAMPLE_RATE)
    clips: list[list[voice.Chunk]] = []
    size = 0
    for whole in chunks:
        for piece in split_long(audio, whole, limit):
            length = piece["end"] - piece["start"]
            if clips and size + length <= limit:
                clips[-1].append(piece)
                size += length
            else:
                clips.append([piece])
                size = length
    return clips


def prepare(
    item: BatchItem,
    settings: ModelSettings,
    features_of: Callable[[Samples], npt.NDArray[np.float32]],
    max_audio_seconds: float,
) -> Prepared:
    """Decode `item` and cut its voiced audio into clips. Raises JobError (bad media, too long);
    `features_of` is the model's feature extractor."""
    audio = decode(item.path, max_audio_seconds)
    duration = audio.size / SAMPLE_RATE
    lo, hi = speech_span(audio, SAMPLE_RATE)
    voiced_seconds = 0.0
    if settings.vad_filter:
        voiced = voice.speech(
            audio[lo:hi], settings.vad_threshold, settings.vad_pad_ms, settings.vad_pad_before_ms
        )
        voiced_seconds = voiced.seconds
        chunks = [{"start": lo + c["start"], "end": lo + c["end"]} for c in voiced.heard]
        where: voice.Speech | None = voice.Speech(
            chunks,
            [{"start": lo + c["start"], "end": lo + c["end"]} for c in voiced.found],
            voiced.seconds,
        )
    else:
        chunks = [{"start": lo, "end": hi}] if hi > lo else []
        where = None
    clips = []
    for members in group(audio, chunks, CLIP_SECONDS):
        joined = voice.join(audio, members)
        mel = features_of(joined)[..., :-1]  # the extractor adds one frame past the end
        clips.append(Clip(mel[..., : 100 * int(CLIP_SECONDS)], members, joined.size / SAMPLE_RATE))
    speech = voiced_seconds if settings.vad_filter else sum(c.seconds for c in clips)
    return Prepared(item, audio, duration, clips, round(speech, 3), where)
