"""The OpenAPI description of the OpenAI-compatible routes: their multipart form (read by hand
in `routes/openai.py`, so FastAPI cannot describe it) and their error answers."""

from __future__ import annotations

from typing import Any, Final

from stt_api.openai_format import Granularity, ResponseFormat
from stt_common.messages import MAX_HOTWORDS_CHARS, MAX_PROMPT_CHARS, Task


def form_schema(task: Task) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "The audio or video"},
        "model": {
            "type": "string",
            "description": "Any value (whisper-1 included): the served model is used",
            "default": "whisper-1",
        },
        "language": {
            "type": "string",
            "description": "ISO-639-1 code of the speech; detected when absent",
        },
        "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
        "hotwords": {
            "type": "string",
            "maxLength": MAX_HOTWORDS_CHARS,
            "description": "stt's extension: words the model should expect",
        },
        "response_format": {
            "type": "string",
            "enum": [f.value for f in ResponseFormat],
            "default": "json",
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
    }
    if task is Task.TRANSCRIBE:
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": [g.value for g in Granularity]},
            "description": "With verbose_json: segment (default) and/or word",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": properties}
                }
            },
        }
    }


ERROR_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ERROR: Final = {"content": {"application/json": {"schema": ERROR_SCHEMA}}}
RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "json and verbose_json: JSON; text, srt, vtt: text",
        "content": {"application/json": {}, "text/plain": {}, "text/vtt": {}},
    },
    400: {**ERROR, "description": "A field breaks its rule, or the file is not audio"},
    401: {**ERROR, "description": "Missing or wrong key"},
    413: {**ERROR, "description": "File over STT_MAX_UPLOAD_BYTES"},
    429: {**ERROR, "description": "Rate limit; see Retry-After"},
    503: {**ERROR, "description": "Object storage or Kafka unavailable"},
    504: {**ERROR, "description": "Still running after STT_OPENAI_WAIT_SECONDS; poll the job"},
}
