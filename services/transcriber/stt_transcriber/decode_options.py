"""What a job asks of the decoder beyond its language (`prompt`, `hotwords`, `task`, word
timestamps, OpenAI's segment details), and the optional Segment fields those requests add.

The defaults change nothing: a job that asks for nothing decodes exactly as before and its
segments carry only text, times and the decoder's evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from faster_whisper.transcribe import Segment as WhisperSegment

from stt_common.messages import SubmitEvent, Task, Word

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


def _clamped(value: float, offset: float, bound: float | None) -> float:
    value += offset
    return value if bound is None else min(max(value, offset), bound)


def asked_fields(
    seg: WhisperSegment, offset: float, bound: float | None, options: DecodeOptions
) -> dict[str, object]:
    """The optional Segment fields the job asked for, on the whole file's clock (the decoder's
    evidence, no_speech_prob, avg_logprob and compression_ratio, is always given)."""
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
        )
    return fields
