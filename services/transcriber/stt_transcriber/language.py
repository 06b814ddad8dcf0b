"""The language of a job: what was asked for, what the voiced audio sounds like, and which the
model decodes in.

Detection costs Whisper one encoder pass over 30 s of audio plus one decoder step. The encoder
pass is the expensive part and decoding computes it anyway for its first chunk, so with a
requested language the detection reuses that encoder output (`DetectingWhisper`): a
`detected_language` for every job at the cost of one decoder step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import ctranslate2
from faster_whisper import WhisperModel


class DetectingWhisper(WhisperModel):  # type: ignore[misc]
    """WhisperModel that, when asked (`detect_next`), detects the language on the next encoder
    output it computes anyway, the first 30 s chunk it decodes: the language of the voiced audio
    at the cost of one decoder step, not of another encoder pass. Per thread, as jobs are."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()

    def detect_next(self) -> None:
        self._local.want = True
        self._local.found = None

    def detected(self) -> tuple[str, float] | None:
        """(language, probability) found since `detect_next`, or None."""
        self._local.want = False
        found: tuple[str, float] | None = getattr(self._local, "found", None)
        return found

    def encode(self, features: object) -> ctranslate2.StorageView:
        output: ctranslate2.StorageView = super().encode(features)
        if getattr(self._local, "want", False):
            self._local.want = False
            token, probability = self.model.detect_language(output)[0][0]
            self._local.found = (token[2:-2], float(probability))  # "<|vi|>" -> "vi"
        return output


@dataclass
class Language:
    """The language of one job: asked for, detected, and the one decoded in."""

    requested: str | None
    decode: str | None = None  # fixed by the first window with speech
    detected: str | None = None
    probability: float | None = None
    mismatch: bool | None = None
