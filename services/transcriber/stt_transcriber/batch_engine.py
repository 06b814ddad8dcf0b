"""Cross-job batched inference: the <= 30 s clips of several jobs through one encoder pass and
one `generate` call of the shared CTranslate2 Whisper model.

A queue of short clips is where one-job-at-a-time wastes most: each clip is padded to a 30 s
window and encoded and decoded alone. Here N jobs' clips go through the model together, each
with its own prompt tokens (its language, its task, its prompt and hotwords), so each job keeps
its own semantics.

Invariants:
* each job's result has the fields and guards of the sequential engine (`engine.Transcript`,
  quality.screen, confidence over the kept tokens, `detected_language` from its first clip);
* the clips of one job do not see each other's text (as in faster-whisper's batched pipeline);
* a clip that fails faster-whisper's compression-ratio or log-probability check is decoded
  again alone with the temperature fallback, as the sequential engine does; a clip the model
  judges speechless (no_speech_prob over 0.6 with avg_logprob under -1) is skipped, as there;
* one job's failure (bad media, unsupported language, cancellation) is its own result: the
  others in the batch complete. A failure of the batched call itself fails no job: the caller
  runs them one at a time (`BatchFailed`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import (
    TranscriptionOptions,
    get_compression_ratio,
    get_suppressed_tokens,
)

from stt_transcriber import voice
from stt_transcriber.audio import invalid_media
from stt_transcriber.batch_clips import BatchItem, Clip, Prepared, prepare
from stt_transcriber.decode import SAMPLE_RATE
from stt_transcriber.decode_options import DecodeOptions
from stt_transcriber.engine import Transcript, WhisperEngine, _Collected, screener, stop_if
from stt_transcriber.errors import JobError
from stt_transcriber.language import Language

log = logging.getLogger(__name__)
# faster-whisper's defaults, which the sequential engine uses.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
BEST_OF = 5
MAX_INITIAL_TIMESTAMP = 1.0
# Rounds of continuation a clip may take; a 30 s clip of fast speech takes 2 or 3.
MAX_ROUNDS = 8

ItemResult = Transcript | BaseException


class BatchFailed(Exception):
    """The batched model call itself failed; no job's outcome is known."""


@dataclass
class _Job:
    prepared: Prepared
    lang: Language
    tokenizer: Tokenizer | None = None  # in the language decoded in, once fixed
    first_prefix: list[int] = field(default_factory=list)  # the job's prompt and hotwords
    next_prefix: list[int] = field(default_factory=list)  # hotwords only

    @property
    def tok(self) -> Tokenizer:
        assert self.tokenizer is not None, "the language is fixed in the first round"
        return self.tokenizer

    def prefix(self, first: bool) -> list[int]:
        """The prompt tokens before <|startoftranscript|> for a clip's first pass or a later."""
        return self.first_prefix if first else self.next_prefix


@dataclass
class _Pass:
    """One clip's decoding: where it has got to (frames) and the segments so far, on the
    clip's clock."""

    job: _Job
    clip: Clip
    seek: int = 0
    segments: list[WhisperSegment] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.clip.mel.shape[-1])


def eligible(options: DecodeOptions) -> bool:
    """Whether a job can join a batch: word timestamps need each clip's own alignment pass,
    which the sequential engine does."""
    return not options.word_timestamps


class BatchEngine:
    """Runs prepared jobs together on the sequential engine's model (no second copy)."""

    def __init__(self, engine: WhisperEngine) -> None:
        self.engine = engine
        self.whisper = engine.model
        self.settings = engine.settings

    def prepare(self, item: BatchItem) -> Prepared:
        """Decode and cut one job (CPU only, no model call); raises JobError."""
        stop_if(item.should_stop)
        try:
            return prepare(
                item,
                self.settings,
                self.whisper.feature_extractor,
                self.engine.max_audio_seconds,
            )
        except av.FFmpegError as exc:  # as the sequential engine maps them
            raise invalid_media(exc) from exc

    def transcribe_many(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        """Each item's transcript, or the exception it failed with, in order."""
        outcomes: list[ItemResult | None] = [None] * len(items)
        ready: list[tuple[int, Prepared]] = []
        for index, item in enumerate(items):
            try:
                ready.append((index, self.prepare(item)))
            except Exception as exc:  # one job's failure is its own
                outcomes[index] = exc
        for index, outcome in zip(
            [i for i, _ in ready], self.run([p for _, p in ready]), strict=True
        ):
            outcomes[index] = outcome
        return [o if o is not None else RuntimeError("no outcome") for o in outcomes]

    def run(self, jobs: Sequence[Prepared]) -> list[ItemResult]:
        """Transcribe prepared jobs together; raises BatchFailed if the model call fails."""
        outcomes: list[ItemResult | None] = [None] * len(jobs)
        live: list[tuple[int, _Job]] = []
        for index, prepared in enumerate(jobs):
            try:
                stop_if(prepared.item.should_stop)
                live.append((index, self._job(prepared)))
            except JobError as exc:
                outcomes[index] = exc
        passes = [_Pass(job, clip) for _, job in live for clip in job.prepared.clips]
        try:
            self._decode(passes)
        except Exception as exc:
            raise BatchFailed(str(exc)) from exc
        for i, job in live:
            try:
                stop_if(job.prepared.item.should_stop)
                outcomes[i] = self._transcript(job, [p for p in passes if p.job is job])
            except Exception as exc:  # one job's failure is its own
                outcomes[i] = exc
        return [o if o is not None else RuntimeError("no outcome") for o in outcomes]

    def _job(self, prepared: Prepared) -> _Job:
        requested = prepared.item.language
        lang = Language(None if requested in (None, "", "auto") else requested)
        if lang.requested is not None and lang.requested not in self.whisper.supported_languages:
            raise JobError(
                f"Unsupported language {requested!r}: use a Whisper language code or 'auto'",
                "unsupported_language",
            )
        # The tokens before <|startoftranscript|>: the same in every language's tokenizer.
        neutral = Tokenizer(
            self.whisper.hf_tokenizer, self.whisper.model.is_multilingual, "transcribe", "en"
        )
        options = prepared.item.options
        sot = len(neutral.sot_sequence)
        previous = neutral.encode(" " + options.prompt.strip()) if options.prompt else []
        # The job's prompt starts each clip (the clips are the sequential engine's windows
        # here); hotwords go with every pass, as sequential decoding gives them.
        first = self.whisper.get_prompt(neutral, previous, hotwords=options.hotwords)[:-sot]
        later = self.whisper.get_prompt(neutral, [], hotwords=options.hotwords)[:-sot]
        return _Job(prepared, lang, first_prefix=first, next_prefix=later)

    def _decode(self, passes: list[_Pass]) -> None:
        """Every clip through the model in rounds: in each, the clips still unfinished go
        through one encoder pass and one generate call per prompt layout (CTranslate2 needs
        <|startoftranscript|> at the same place in every item of a call, so jobs with a
        prompt or hotwords of another length are called apart). A clip whose last segment the
        model left unfinished goes again from that segment's start in the next round, as
        sequential decoding seeks. A job's language is fixed on its first clip's encoding."""
        pending = [p for p in passes if p.frames > 0]
        for _ in range(MAX_ROUNDS):
            if not pending:
                return
            layouts: dict[int, list[_Pass]] = {}
            for p in pending:
                layouts.setdefault(len(p.job.prefix(p.seek == 0)), []).append(p)
            pending = [p for same in layouts.values() for p in self._round(same)]
        if pending:  # a bound on a model that keeps stalling; not seen on real speech
            log.warning("%d clips left unfinished after %d rounds", len(pending), MAX_ROUNDS)

    def _round(self, passes: list[_Pass]) -> list[_Pass]:
        """One encoder pass and one generate call; returns the passes that need another."""
        features = np.stack([pad_or_trim(p.clip.mel[:, p.seek :]) for p in passes])
        encoded = self.whisper.encode(features)
        if any(p.job.tokenizer is None for p in passes):
            found = self.whisper.model.detect_language(encoded)
            for p, languages in zip(passes, found, strict=True):
                if p.job.tokenizer is None and p.clip is p.job.prepared.clips[0]:
                    token, probability = languages[0]
                    self._fix_language(p.job, token[2:-2], float(probability))
        prompts = [p.job.prefix(p.seek == 0) + list(p.job.tok.sot_sequence) for p in passes]
        results = self.whisper.model.generate(
            encoded,
            prompts,
            beam_size=self.settings.beam_size,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            max_length=self.whisper.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(passes[0].job.tok, [-1]),
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP / self.whisper.time_precision),
        )
        return [
            p
            for p, prompt, result in zip(passes, prompts, results, strict=True)
            if self._take(p, prompt, result)
        ]

    def _take(self, p: _Pass, prompt: list[int], result: Any) -> bool:
        """Keep one round's output of a clip; True when the clip needs another round."""
        tok = p.job.tok
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        ratio = get_compression_ratio(tok.decode(tokens).strip())
        temperature = 0.0
        options = p.job.prepared.item.options
        if options.temperatures()[0] > 0 or self._needs_fallback(result, avg_logprob, ratio):
            # Alone, with faster-whisper's own fallback over the job's temperatures.
            alone = self.whisper.encode(pad_or_trim(p.clip.mel[:, p.seek :]))
            result, avg_logprob, temperature, ratio = self.whisper.generate_with_fallback(
                alone, prompt, tok, self._options(options, tok)
            )
        size = p.frames - p.seek
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
            return False  # the model hears no speech in the rest of the clip: skipped
        pieces, seek, _ = self.whisper._split_segments_by_timestamps(
            tokenizer=tok,
            tokens=result.sequences_ids[0],
            time_offset=p.seek * self.whisper.feature_extractor.time_per_frame,
            segment_size=size,
            segment_duration=size * self.whisper.feature_extractor.time_per_frame,
            seek=p.seek,
        )
        for piece in pieces:
            p.segments.append(
                WhisperSegment(
                    id=len(p.segments),
                    seek=p.clip.chunks[0]["start"] * 100 // SAMPLE_RATE,
                    start=round(piece["start"], 3),
                    end=round(min(piece["end"], p.clip.seconds), 3),
                    text=tok.decode(piece["tokens"]),
                    tokens=piece["tokens"],
                    avg_logprob=avg_logprob,
                    compression_ratio=get_compression_ratio(tok.decode(piece["tokens"])),
                    no_speech_prob=result.no_speech_prob,
                    words=None,
                    temperature=temperature,
                )
            )
        advanced: bool = seek > p.seek
        p.seek = seek
        return advanced and seek < p.frames

    @staticmethod
    def _needs_fallback(result: Any, avg_logprob: float, ratio: float) -> bool:
        silence = result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD
        failed = ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD
        return failed and not silence

    def _fix_language(self, job: _Job, found: str, probability: float) -> None:
        """The sequential engine's choice, on the job's first clip's encoder output."""
        lang = job.lang
        lang.detected, lang.probability = found, probability
        if lang.requested is None:
            lang.decode, lang.mismatch = found, False
        elif self.settings.language_mismatch == "detect":
            confident = probability >= self.settings.language_mismatch_probability
            lang.decode = found if confident and found != lang.requested else lang.requested
            lang.mismatch = lang.decode != lang.requested
        else:
            lang.decode = lang.requested
            lang.mismatch = (
                found != lang.requested
                and probability >= self.settings.language_mismatch_probability
            )
        options = job.prepared.item.options
        job.tokenizer = Tokenizer(
            self.whisper.hf_tokenizer,
            self.whisper.model.is_multilingual,
            task=str(options.task),
            language=lang.decode,
        )

    def _options(self, options: DecodeOptions, tokenizer: Tokenizer) -> TranscriptionOptions:
        return TranscriptionOptions(
            beam_size=self.settings.beam_size,
            best_of=BEST_OF,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            log_prob_threshold=LOG_PROB_THRESHOLD,
            no_speech_threshold=NO_SPEECH_THRESHOLD,
            compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=options.temperatures(),
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=False,
            max_initial_timestamp=MAX_INITIAL_TIMESTAMP,
            word_timestamps=False,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=None,
            clip_timestamps=[0.0],
            hallucination_silence_threshold=None,
            hotwords=options.hotwords,
        )

    def _transcript(self, job: _Job, passes: list[_Pass]) -> Transcript:
        prepared, lang = job.prepared, job.lang
        collected = _Collected(prepared.duration, None, prepared.item.options)
        screen = (
            screener(prepared.audio, 0.0, lang, prepared.where)
            if self.settings.hallucination_filter
            else None
        )
        for p in passes:
            for seg in voice.restore(p.segments, p.clip.chunks):
                collected.add(seg, 0.0, None, screen)
        return collected.transcript(lang, prepared.speech_seconds)
