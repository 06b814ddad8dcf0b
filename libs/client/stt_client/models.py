"""The API's job body, as the client reads it (its own copy: no dependency on the server)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["PROCESSING", "COMPLETED", "FAILED"]
SubtitleFormat = Literal["srt", "vtt", "txt"]


class Word(BaseModel):
    model_config = ConfigDict(extra="ignore")

    word: str
    start: float
    end: float


class Segment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    start: float
    end: float
    text: str
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    words: list[Word] | None = None  # when submitted with word_timestamps


class RemovedSegment(BaseModel):
    """Text the model produced that the transcript leaves out (reason: repetition,
    known_hallucination, no_words, no_speech, unvoiced; unknown reasons are passed through as
    text)."""

    model_config = ConfigDict(extra="ignore")

    start: float
    end: float
    text: str
    reason: str


class Job(BaseModel):
    """A job's state. Fields the server leaves out are None; fields it adds later are ignored."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    status: Status
    message: str = ""
    transcription: str | None = None
    duration: float | None = None
    confidence: float | None = None
    processing_time: float | None = None
    language: str | None = None
    language_probability: float | None = None
    segments: list[Segment] | None = None
    error: str | None = None
    error_type: str | None = None
    stage: str | None = None
    progress: float | None = None
    poll_after_seconds: float | None = None
    speech_seconds: float | None = None
    detected_language: str | None = None
    language_mismatch: bool | None = None
    removed_segments: list[RemovedSegment] | None = None
    metadata: dict[str, str] | None = None  # as given on submit
    tenant: str | None = None  # absent for the default tenant
    priority: str | None = None  # "batch" for a batch-lane job; absent for interactive ones
    submitted_at: datetime | None = None  # in job lists

    @property
    def done(self) -> bool:
        return self.status != "PROCESSING"


class JobPage(BaseModel):
    """One page of `GET /api/v1/transcribe`: jobs newest first, and the next page's cursor."""

    model_config = ConfigDict(extra="ignore")

    jobs: list[Job]
    next_cursor: str | None = None
