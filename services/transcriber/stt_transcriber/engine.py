"""The speech-to-text engine: a `Protocol` the worker depends on, and faster-whisper behind it.

faster-whisper computes the log-mel features of all the audio it is given at once (several times
the size of the samples), so long audio is fed to it in windows of at most `STT_WINDOW_SECONDS`,
cut at pauses (`windows.py`); peak memory then grows with the length only by the samples.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
from faster_whisper import BatchedInferencePipeline
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import TranscriptionInfo

from stt_common import otel
from stt_common.cancellation import CANCELLED_MESSAGE, CANCELLED_TYPE
from stt_common.messages import RemovedSegment, Segment
from stt_common.settings import ModelSettings
from stt_transcriber import heap, quality, voice
from stt_transcriber.audio import invalid_media
from stt_transcriber.decode import SAMPLE_RATE, Samples, decode
from stt_transcriber.decode_options import DecodeOptions, asked_fields
from stt_transcriber.errors import JobError
from stt_transcriber.language import DetectingWhisper, Language
from stt_transcriber.windows import speech_span, windows

# The end of the previous window's tokens, given as the next one's prompt so that spelling, names
# and punctuation carry over the cut: as many as Whisper keeps (n_text_ctx / 2 - 1), which is
# what faster-whisper itself carries from one 30 s chunk to the next inside a window.
PROMPT_TOKENS = 223
# quality.screen bound to a window: (start, end, text, no_speech_prob, temperature), times on
# the file's clock.
Screen = Callable[[float, float, str, float, float], "quality.Screened"]


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: list[Segment]
    duration: float
    language: str | None  # the language transcribed in; None when no speech and "auto"
    language_probability: float | None  # of detected_language
    confidence: float
    speech_seconds: float = 0.0
    detected_language: str | None = None  # over the voiced audio; None when there was none
    language_mismatch: bool | None = None
    removed: list[RemovedSegment] | None = None


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
        self.removed: list[RemovedSegment] = []

    def add(
        self,
        seg: WhisperSegment,
        offset: float,
        bound: float | None,
        screen: Screen | None = None,
    ) -> None:
        """One segment of the window that starts at `offset` seconds; with a `bound`, its times
        are kept inside [offset, bound] so they cannot overlap the next window's. `screen`
        (quality.screen, given the file's times) decides what of its text is kept; only kept
        segments count towards `confidence`."""
        start, end = offset + seg.start, offset + seg.end
        if bound is not None:
            start, end = min(max(start, offset), bound), min(max(end, offset), bound)
        start, end = round(start, 3), round(end, 3)
        text: str | None = seg.text.strip()
        if text and screen is not None:
            verdict = screen(start, end, text, seg.no_speech_prob, seg.temperature or 0.0)
            self.removed += verdict.removed
            text = verdict.text
        if text:
            self.segments.append(
                Segment(
                    start=start,
                    end=end,
                    text=text,
                    no_speech_prob=round(seg.no_speech_prob, 4),
                    avg_logprob=round(seg.avg_logprob, 4),
                    compression_ratio=round(seg.compression_ratio, 4),
                    **asked_fields(seg, offset, bound, self.options),
                )
            )
            self.logprob_sum += seg.avg_logprob * len(seg.tokens)
            self.token_count += len(seg.tokens)
            self.tail.extend(seg.tokens)  # left-out text would steer the next window into it
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

    def transcript(self, lang: Language, speech_seconds: float) -> Transcript:
        """The job's result from what was collected (the sequential and batched engines alike)."""
        return Transcript(
            text=" ".join(s.text for s in self.segments),
            segments=self.segments,
            duration=self.duration,
            language=lang.decode or lang.requested,
            language_probability=lang.probability,
            confidence=self.confidence(),
            speech_seconds=round(speech_seconds, 3),
            detected_language=lang.detected,
            language_mismatch=lang.mismatch,
            removed=self.removed,
        )


class WhisperEngine:
    """faster-whisper (CTranslate2), with the model loaded once and shared by every job."""

    def __init__(
        self, model: str, settings: ModelSettings, max_audio_seconds: float = 4 * 3600
    ) -> None:
        self.settings = settings
        self.max_audio_seconds = max_audio_seconds
        started = time.perf_counter()
        self.model = DetectingWhisper(
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
        fixed on the first window with speech and used for the rest, each window after the
        first gets the last kept tokens so far as its prompt (sequential mode; the first gets
        `options.prompt`), and segment
        times are moved onto the whole file's clock. A shorter file is one call, as before.

        With `vad_filter`, each window's voiced chunks (voice.py) are all the model hears; a
        window without any is not decoded at all, so a file of music, noise or silence gives
        "" with `speech_seconds` 0. Each segment then passes the guards of quality.py.

        `detected_language` comes from the first 30 s of voiced audio: with "auto", the
        model's own detection; otherwise the first encoder output, reused (`_DetectingWhisper`).

        `confidence` is the geometric mean of the model's per-token probabilities over the
        kept segments: exp(sum(avg_logprob * tokens) / sum(tokens)), clamped to [0, 1]; 0.0
        when nothing was said. faster-whisper's `avg_logprob` is the mean log-probability of a
        segment's tokens, so weighting by token count gives the mean over all tokens.
        """
        lang = Language(None if language in (None, "", "auto") else language)
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
        speech_seconds = 0.0
        try:
            for start, end in bounds:
                stop_if(should_stop)
                # A view, not a copy; the window's features live only inside this call.
                speech_seconds += self._window(
                    audio[start:end],
                    start / SAMPLE_RATE,
                    lang,
                    collected,
                    # A single window keeps the model's times untouched, as before windowing.
                    bound=end / SAMPLE_RATE if len(bounds) > 1 else None,
                    should_stop=should_stop,
                )
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
        return collected.transcript(lang, speech_seconds)

    def _window(
        self,
        audio: Samples,
        offset: float,
        lang: Language,
        collected: _Collected,
        bound: float | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> float:
        """Transcribe one window starting at `offset` seconds into `collected`; returns the
        seconds of voiced audio it held."""
        if self.settings.vad_filter:
            where = voice.speech(
                audio,
                self.settings.vad_threshold,
                self.settings.vad_pad_ms,
                self.settings.vad_pad_before_ms,
            )
            chunks, voiced_seconds = where.heard, where.seconds
            if not chunks:
                return 0.0  # nothing voiced: nothing to decode, nothing to invent
            voiced = voice.join(audio, chunks)
        else:
            chunks, voiced, where = [], audio, None
            voiced_seconds = audio.size / SAMPLE_RATE
        first = lang.decode is None
        if first:
            self._choose_language(voiced, lang)
        segments, info = self._decode(audio, voiced, chunks, lang.decode, collected)
        if first and lang.requested is None:  # "auto": detected by faster-whisper, as it does
            lang.decode = lang.detected = info.language
            lang.probability, lang.mismatch = info.language_probability, False
        screen = (
            screener(audio, offset, lang, where) if self.settings.hallucination_filter else None
        )
        for seg in segments:  # decoding happens lazily, one 30 s chunk (or batch) at a time
            collected.add(seg, offset, bound, screen)
            stop_if(should_stop)
        if first and lang.requested is not None and lang.detected is None:
            self._detected(lang)
        return voiced_seconds

    def _decode(
        self,
        audio: Samples,
        voiced: Samples,
        chunks: list[voice.Chunk],
        language: str | None,
        collected: _Collected,
    ) -> tuple[Iterator[WhisperSegment], TranscriptionInfo]:
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
            return iter(segments), info
        segments, info = self.model.transcribe(
            voiced,
            language=language,
            beam_size=self.settings.beam_size,
            vad_filter=False,  # done above: the model gets the voiced chunks only
            initial_prompt=collected.prompt(),
            condition_on_previous_text=self.settings.condition_on_previous_text,
            **asked,
        )
        return (voice.restore(segments, chunks) if chunks else iter(segments)), info

    def _choose_language(self, voiced: Samples, lang: Language) -> None:
        """Fix the language to decode in, before the first window with speech is decoded."""
        if lang.requested is None:
            return  # "auto": faster-whisper detects on the voiced audio it is given
        if self.settings.language_mismatch == "detect":
            # One more encoder pass (30 s of voiced audio), only in this mode.
            found, probability, _ = self.model.detect_language(voiced[: 30 * SAMPLE_RATE])
            lang.detected, lang.probability = found, float(probability)
            confident = probability >= self.settings.language_mismatch_probability
            lang.decode = found if confident and found != lang.requested else lang.requested
            lang.mismatch = lang.decode != lang.requested
        else:
            lang.decode = lang.requested
            self.model.detect_next()  # on the encoder output the decoding computes anyway

    def _detected(self, lang: Language) -> None:
        """After the first window with speech is decoded: what was detected on its first chunk
        (None if the model never encoded one)."""
        found = self.model.detected()
        if found is not None:
            lang.detected, lang.probability = found
            lang.mismatch = (
                found[0] != lang.requested
                and found[1] >= self.settings.language_mismatch_probability
            )


def screener(
    audio: Samples, offset: float, lang: Language, where: voice.Speech | None = None
) -> Screen:
    """quality.screen for the segments of audio that starts `offset` seconds into the file (times
    on the file's clock), judged in the language the job decodes in. `where`: what the VAD found
    voiced in `audio` and what the model heard; with it, a segment wholly over the padding
    (`voice.over_padding_only`) gets the padding guard."""

    def screen(
        start: float, end: float, text: str, no_speech_prob: float, temperature: float
    ) -> quality.Screened:
        at, to = start - offset, end - offset
        padding_only = where is not None and voice.over_padding_only(where, at, to)
        return quality.screen(
            start,
            end,
            text,
            lang.decode,
            no_speech_prob,
            lambda: voice.voiced_share(audio, at, to),
            temperature,
            (lambda: voice.voiced_share(audio, at, to, quality.PADDING_THRESHOLD))
            if padding_only
            else None,
        )

    return screen
