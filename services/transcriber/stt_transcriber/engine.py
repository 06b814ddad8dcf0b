"""The speech-to-text engine: a `Protocol` the worker depends on, and faster-whisper behind it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
from faster_whisper import WhisperModel

from stt_common.messages import Segment
from stt_common.settings import ModelSettings
from stt_transcriber.audio import invalid_media
from stt_transcriber.decode import decode
from stt_transcriber.errors import JobError


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: list[Segment]
    duration: float
    language: str
    language_probability: float
    confidence: float


class Engine(Protocol):
    def transcribe(
        self,
        path: Path,
        language: str | None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Transcribe `path`; blocking, so callers use a thread. None or "auto" detects."""
        ...


class WhisperEngine:
    """faster-whisper (CTranslate2), with the model loaded once and shared by every job."""

    def __init__(
        self, model: str, settings: ModelSettings, max_audio_seconds: float = 4 * 3600
    ) -> None:
        self.settings = settings
        self.max_audio_seconds = max_audio_seconds
        started = time.perf_counter()
        self.model = WhisperModel(
            model,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
        )
        self.load_seconds = time.perf_counter() - started

    def transcribe(
        self,
        path: Path,
        language: str | None,
        on_progress: Callable[[float], None] | None = None,
    ) -> Transcript:
        """Transcribe `path`, calling `on_progress` with the share of the audio done (0-1).

        `confidence` is the geometric mean of the model's per-token probabilities over the
        whole transcript: exp(sum(avg_logprob * tokens) / sum(tokens)) over the segments,
        clamped to [0, 1]; 0.0 when nothing was said. faster-whisper's `avg_logprob` is the
        mean log-probability of a segment's tokens, so weighting by token count gives the
        mean over all tokens.
        """
        requested = None if language in (None, "", "auto") else language
        # Decoded here, within the sample bound, rather than by faster-whisper (unbounded).
        audio = decode(path, self.max_audio_seconds)
        try:
            segments_iter, info = self.model.transcribe(
                audio,
                language=requested,
                beam_size=self.settings.beam_size,
                vad_filter=self.settings.vad_filter,
            )
            segments: list[Segment] = []
            texts: list[str] = []
            logprob_sum = 0.0
            token_count = 0
            for seg in segments_iter:  # decoding happens lazily, one window at a time
                text = seg.text.strip()
                if text:
                    texts.append(text)
                    segments.append(
                        Segment(start=round(seg.start, 3), end=round(seg.end, 3), text=text)
                    )
                logprob_sum += seg.avg_logprob * len(seg.tokens)
                token_count += len(seg.tokens)
                if on_progress is not None and info.duration > 0:
                    on_progress(min(1.0, seg.end / info.duration))
        except av.FFmpegError as exc:  # first: some (InvalidDataError) subclass ValueError
            raise invalid_media(exc) from exc
        except ValueError as exc:
            if "not a valid language code" in str(exc):
                raise JobError(
                    f"Unsupported language {language!r}: use a Whisper language code or 'auto'",
                    "unsupported_language",
                ) from exc
            raise
        if on_progress is not None:
            on_progress(1.0)
        confidence = math.exp(logprob_sum / token_count) if token_count else 0.0
        return Transcript(
            text=" ".join(texts),
            segments=segments,
            duration=info.duration,
            language=info.language,
            language_probability=info.language_probability,
            confidence=min(1.0, max(0.0, confidence)),
        )
