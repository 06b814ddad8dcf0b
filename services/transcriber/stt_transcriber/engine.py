"""The speech-to-text engine: a `Protocol` the worker depends on, and faster-whisper behind it.

faster-whisper computes the log-mel features of all the audio it is given at once (several times
the size of the samples), so long audio is fed to it in windows of at most `STT_WINDOW_SECONDS`,
cut at pauses (`windows.py`); peak memory then grows with the length only by the samples.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import TranscriptionInfo

from stt_common import otel
from stt_common.cancellation import CANCELLED_MESSAGE, CANCELLED_TYPE
from stt_common.messages import Segment, SubmitEvent, Task, Word
from stt_common.settings import ModelSettings
from stt_transcriber import heap
from stt_transcriber.audio import invalid_media
from stt_transcriber.decode import SAMPLE_RATE, Samples, decode
from stt_transcriber.errors import JobError
from stt_transcriber.windows import speech_span, windows

# The end of the previous window's tokens, given as the next one's prompt so that spelling, names
# and punctuation carry over the cut: as many as Whisper keeps (n_text_ctx / 2 - 1), which is
# what faster-whisper itself carries from one 30 s chunk to the next inside a window.
PROMPT_TOKENS = 223
TEMPERATURE_STEP = 0.2  # faster-whisper's own fallback step (0.0, 0.2, ... 1.0)


@dataclass(frozen=True)
class DecodeOptions:
    """What a job asks of the decoder beyond its language; the defaults change nothing."""

    prompt: str | None = None  # the first window's prompt; later windows get the previous words
    hotwords: str | None = None  # given to every window
    task: Task = Task.TRANSCRIBE
    word_timestamps: bool = False
    segment_details: bool = False  # tokens, temperature, seek and decoder statistics per segment
    temperature: float | None = None  # the first of the fallback temperatures; None = 0

    @classmethod
    def of(cls, job: SubmitEvent) -> DecodeOptions:
        return cls(
            prompt=job.prompt or None,
            hotwords=job.hotwords or None,
            task=job.task,
            word_timestamps=job.word_timestamps,
            segment_details=job.segment_details,
            temperature=job.temperature,
        )

    def temperatures(self) -> list[float]:
        """From `temperature` up to 1.0 by TEMPERATURE_STEP: the next is tried when a decode
        fails faster-whisper's compression-ratio or log-probability check."""
        first = self.temperature or 0.0
        steps = math.floor((1.0 - first) / TEMPERATURE_STEP + 1e-9)
        return [round(first + k * TEMPERATURE_STEP, 3) for k in range(steps + 1)] or [first]


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
        should_stop: Callable[[], bool] | None = None,
        options: DecodeOptions | None = None,
    ) -> Transcript:
        """Transcribe `path`; blocking, so callers use a thread. None or "auto" detects.
        Raises JobError("cancelled") soon after `should_stop()` turns true."""
        ...


def stop_if(should_stop: Callable[[], bool] | None) -> None:
    """A safe point of the inference thread: the client deleted the job, so stop here."""
    if should_stop is not None and should_stop():
        raise JobError(CANCELLED_MESSAGE, CANCELLED_TYPE)


class _Collected:
    """The segments of all windows so far, on the whole file's clock, and the token statistics
    behind `confidence`."""

    def __init__(
        self,
        duration: float,
        on_progress: Callable[[float], None] | None,
        options: DecodeOptions | None = None,
    ) -> None:
        self.duration = duration
        self.on_progress = on_progress
        self.options = options or DecodeOptions()
        self.segments: list[Segment] = []
        self.logprob_sum = 0.0
        self.token_count = 0
        self.done = 0.0
        self.tail: deque[int] = deque(maxlen=PROMPT_TOKENS)

    def add(self, seg: WhisperSegment, offset: float, bound: float | None) -> None:
        """One segment of the window that starts at `offset` seconds; with a `bound`, its times
        are kept inside [offset, bound] so they cannot overlap the next window's."""
        start, end = offset + seg.start, offset + seg.end
        if bound is not None:
            start, end = min(max(start, offset), bound), min(max(end, offset), bound)
        text = seg.text.strip()
        if text:
            extras = _asked_fields(seg, offset, bound, self.options)
            self.segments.append(
                Segment(start=round(start, 3), end=round(end, 3), text=text, **extras)
            )
        self.logprob_sum += seg.avg_logprob * len(seg.tokens)
        self.token_count += len(seg.tokens)
        self.tail.extend(seg.tokens)
        self.progress(end)

    def progress(self, seconds: float) -> None:
        """Reports the share of the whole file done, never going back."""
        if self.on_progress is not None and self.duration > 0:
            self.done = max(self.done, min(1.0, seconds / self.duration))
            self.on_progress(self.done)

    def prompt(self) -> list[int] | str | None:
        """The last tokens so far; before any, the job's own prompt (or None). Tokens rather
        than text: they keep the timestamp tokens, and a prompt without them leads Whisper to
        leave them out too (one segment for a whole window)."""
        return list(self.tail) or self.options.prompt

    def confidence(self) -> float:
        value = math.exp(self.logprob_sum / self.token_count) if self.token_count else 0.0
        return min(1.0, max(0.0, value))


def _clamped(value: float, offset: float, bound: float | None) -> float:
    value += offset
    return value if bound is None else min(max(value, offset), bound)


def _asked_fields(
    seg: WhisperSegment, offset: float, bound: float | None, options: DecodeOptions
) -> dict[str, object]:
    """The optional Segment fields the job asked for, on the whole file's clock."""
    fields: dict[str, object] = {}
    if options.word_timestamps:
        fields["words"] = [
            Word(
                word=w.word.strip(),
                start=round(_clamped(w.start, offset, bound), 3),
                end=round(_clamped(w.end, offset, bound), 3),
            )
            for w in seg.words or ()
            if w.word.strip()
        ]
    if options.segment_details:
        fields.update(
            tokens=list(seg.tokens),
            temperature=seg.temperature,
            seek=seg.seek + round(offset * 100),  # frames of 10 ms, as faster-whisper counts
            avg_logprob=round(seg.avg_logprob, 4),
            compression_ratio=round(seg.compression_ratio, 4),
            no_speech_prob=round(seg.no_speech_prob, 4),
        )
    return fields


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
        # Wraps the same model (no weights of its own), so building it once costs nothing.
        self.batched = BatchedInferencePipeline(self.model) if settings.batch_size > 0 else None
        self.load_seconds = time.perf_counter() - started

    def transcribe(
        self,
        path: Path,
        language: str | None,
        on_progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        options: DecodeOptions | None = None,
    ) -> Transcript:
        """Transcribe `path`, calling `on_progress` with the share of the audio done (0-1).

        `should_stop` is asked after decoding, between windows and between the segments of a
        window (each ~30 s of audio), so a deleted job stops within one segment's time.
        All-silent audio gets no window (`speech_span`): the model does not run on it.

        Audio longer than `window_seconds` goes to the model window by window: the language is
        detected on the first window (when not given) and used for the rest, each window after
        the first gets the last tokens so far as its prompt (sequential mode; the first gets
        `options.prompt`), and segment times are moved onto the whole file's clock. A shorter
        file is one call, as before.

        `confidence` is the geometric mean of the model's per-token probabilities over the
        whole transcript: exp(sum(avg_logprob * tokens) / sum(tokens)) over the segments,
        clamped to [0, 1]; 0.0 when nothing was said. faster-whisper's `avg_logprob` is the
        mean log-probability of a segment's tokens, so weighting by token count gives the
        mean over all tokens.
        """
        requested = None if language in (None, "", "auto") else language
        # Decoded here, within the sample bound, rather than by faster-whisper (unbounded).
        with otel.step("decode"):  # a span only with OTEL_EXPORTER_OTLP_ENDPOINT
            audio = decode(path, self.max_audio_seconds)
        heap.release()
        stop_if(should_stop)
        duration = audio.size / SAMPLE_RATE
        # Digital silence at the ends is left out (see windows.py); times stay the file's.
        lo, hi = speech_span(audio, SAMPLE_RATE)
        bounds = [
            (lo + start, lo + end)
            for start, end in windows(audio[lo:hi], SAMPLE_RATE, self.settings.window_seconds)
        ]
        collected = _Collected(duration, on_progress, options)
        first: TranscriptionInfo | None = None
        try:
            for start, end in bounds:
                stop_if(should_stop)
                # A view, not a copy; the window's features live only inside this call.
                info = self._window(
                    audio[start:end],
                    start / SAMPLE_RATE,
                    requested if first is None else first.language,
                    collected,
                    # A single window keeps the model's times untouched, as before windowing.
                    bound=end / SAMPLE_RATE if len(bounds) > 1 else None,
                    should_stop=should_stop,
                )
                if first is None:
                    first = info
                heap.release()  # the window's features are gone: give their pages back
                collected.progress(end / SAMPLE_RATE)
            collected.progress(duration)  # trailing silence, if any, needed no model
        except av.FFmpegError as exc:  # first: some (InvalidDataError) subclass ValueError
            raise invalid_media(exc) from exc
        except ValueError as exc:
            if "not a valid language code" in str(exc):
                raise JobError(
                    f"Unsupported language {language!r}: use a Whisper language code or 'auto'",
                    "unsupported_language",
                ) from exc
            raise
        return Transcript(
            text=" ".join(s.text for s in collected.segments),
            segments=collected.segments,
            duration=duration,
            # Silence throughout (no window ran): nothing to detect; "" unless one was asked.
            language=first.language if first is not None else requested or "",
            language_probability=first.language_probability if first is not None else 0.0,
            confidence=collected.confidence(),
        )

    def _window(
        self,
        audio: Samples,
        offset: float,
        language: str | None,
        collected: _Collected,
        bound: float | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TranscriptionInfo:
        """Transcribe one window starting at `offset` seconds into `collected`."""
        options = collected.options
        asked: dict[str, Any] = {
            "task": str(options.task),
            "hotwords": options.hotwords,
            "word_timestamps": options.word_timestamps,
            "temperature": options.temperatures(),
        }
        if self.batched is not None:
            # The pipeline gives one prompt to every <= 30 s chunk of the window, where it would
            # be context for the first only, so batched windows go without the previous words
            # (as its chunks do); the job's own prompt (names, spelling) suits every chunk.
            # Its VAD is required: it is what cuts audio over 30 s into chunks.
            segments, info = self.batched.transcribe(
                audio,
                language=language,
                beam_size=self.settings.beam_size,
                batch_size=self.settings.batch_size,
                vad_filter=True,
                initial_prompt=options.prompt,
                **asked,
            )
        else:
            segments, info = self.model.transcribe(
                audio,
                language=language,
                beam_size=self.settings.beam_size,
                vad_filter=self.settings.vad_filter,
                initial_prompt=collected.prompt(),
                **asked,
            )
        for seg in segments:  # decoding happens lazily, one 30 s chunk (or batch) at a time
            collected.add(seg, offset, bound)
            stop_if(should_stop)
        return info
