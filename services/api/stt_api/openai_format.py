"""OpenAI's audio API shapes: response bodies made from a job record, the error body, the model
list. Pure formatting; `routes/openai.py` does the HTTP.

* `json`: `{"text"}` (transcriptions add `usage`: the audio's seconds, rounded up, as OpenAI's
  whisper-1 does); `text`: the transcript and a newline; `srt`, `vtt`: `subtitles`.
* `verbose_json`: `task`, `language` (the Whisper code, such as "en"; for a translation the
  language that was spoken), `duration`, `text`, `segments[]` (when segment timestamps are asked,
  the default) with `id`, `seek`, `start`, `end`, `text`, `tokens`, `temperature`,
  `avg_logprob`, `compression_ratio`, `no_speech_prob`, and `words[]` (`word`, `start`, `end`)
  when word timestamps are asked.
* Errors: `{"error": {"message", "type", "param", "code"}}`; `OpenAIError` carries one.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from stt_api import subtitles
from stt_common.messages import JobRecord, Segment, Task

OWNER: Final = "stt"
TEXT_TYPE: Final = "text/plain; charset=utf-8"


class ResponseFormat(StrEnum):
    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VERBOSE_JSON = "verbose_json"
    VTT = "vtt"


class Granularity(StrEnum):
    WORD = "word"
    SEGMENT = "segment"


class ErrorType(StrEnum):
    """OpenAI's `error.type` words used here."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    RATE_LIMIT = "rate_limit_error"
    SERVER = "server_error"
    TIMEOUT = "timeout_error"


def error_body(
    message: str, type: ErrorType, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": str(type), "param": param, "code": code}}


def served_model_id(model: str) -> str:
    """The id `/v1/models` lists for STT_MODEL: its last path component ("whisper-base" for a
    model directory of that name), prefixed with "whisper-" when it is a bare size ("base")."""
    name = Path(model.rstrip("/")).name or model
    return name if name.lower().startswith("whisper") else f"whisper-{name}"


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNER}


def model_list(model_id: str) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model_id)]}


def _verbose_segment(number: int, segment: Segment) -> dict[str, Any]:
    return {
        "id": number,
        "seek": segment.seek or 0,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.tokens or [],
        "temperature": segment.temperature or 0.0,
        "avg_logprob": segment.avg_logprob if segment.avg_logprob is not None else 0.0,
        "compression_ratio": segment.compression_ratio or 0.0,
        "no_speech_prob": segment.no_speech_prob or 0.0,
    }


def verbose_json(
    record: JobRecord, task: Task, granularities: frozenset[Granularity]
) -> dict[str, Any]:
    segments = record.segments or []
    body: dict[str, Any] = {
        "task": str(task),
        "language": record.language or "",
        "duration": record.duration or 0.0,
        "text": record.transcription or "",
    }
    if Granularity.SEGMENT in granularities or not granularities:
        body["segments"] = [_verbose_segment(n, s) for n, s in enumerate(segments)]
    if Granularity.WORD in granularities:
        body["words"] = [w.model_dump() for s in segments for w in s.words or ()]
    if task is Task.TRANSCRIBE:
        body["usage"] = usage(record)
    return body


def usage(record: JobRecord) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(record.duration or 0.0)}


def render(
    record: JobRecord,
    fmt: ResponseFormat,
    task: Task,
    granularities: frozenset[Granularity],
) -> tuple[dict[str, Any] | str, str]:
    """(body, media type) of a COMPLETED job in `fmt`; a dict body is JSON."""
    text = record.transcription or ""
    if fmt is ResponseFormat.JSON:
        body: dict[str, Any] = {"text": text}
        if task is Task.TRANSCRIBE:
            body["usage"] = usage(record)
        return body, "application/json"
    if fmt is ResponseFormat.VERBOSE_JSON:
        return verbose_json(record, task, granularities), "application/json"
    if fmt is ResponseFormat.TEXT:
        return text + "\n", TEXT_TYPE
    kind: Literal["srt", "vtt"] = "srt" if fmt is ResponseFormat.SRT else "vtt"
    rendered = subtitles.render(kind, record.segments, record.transcription, record.duration)
    return rendered, subtitles.MEDIA_TYPES[kind]


class OpenAIError(Exception):
    """Answered as `{"error": {...}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        type: ErrorType = ErrorType.INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type, param, code)
        self.headers = headers
