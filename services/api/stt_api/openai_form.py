"""The fields of an OpenAI audio form, checked: what `routes/openai.py` submits.

Every field is optional but `file` (checked by the route); `model` is accepted whatever it is.
A bad field is an `OpenAIError` 400 naming it in `param`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from starlette.datastructures import FormData

from stt_api.openai_format import Granularity, OpenAIError, ResponseFormat
from stt_common.languages import WHISPER_LANGUAGES
from stt_common.messages import MAX_HOTWORDS_CHARS, MAX_PROMPT_CHARS, Task


@dataclass(frozen=True)
class Asked:
    """The form's fields, checked."""

    task: Task
    language: str
    prompt: str | None
    hotwords: str | None
    response_format: ResponseFormat
    temperature: float | None
    granularities: frozenset[Granularity]


def _text(form: FormData, name: str, limit: int | None = None) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OpenAIError(400, f"'{name}' must be a text field, not a file", param=name)
    if limit is not None and len(value) > limit:
        raise OpenAIError(
            400, f"'{name}' is longer than {limit} characters", param=name, code="string_too_long"
        )
    return value.strip() or None


E = TypeVar("E", ResponseFormat, Granularity)


def _choice(kind: type[E], value: str, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise OpenAIError(
            400, f"'{value}' is not one of {allowed} - '{name}'", param=name
        ) from None


def read_fields(form: FormData, task: Task) -> Asked:
    """Check the fields OpenAI defines (and `hotwords`); `model` is accepted whatever it is."""
    language = (_text(form, "language") or "auto").lower()
    if language != "auto" and language not in WHISPER_LANGUAGES:
        raise OpenAIError(
            400,
            f"Unsupported language '{language}': use an ISO-639-1 code Whisper knows, "
            "such as en or vi",
            param="language",
        )
    temperature_text = _text(form, "temperature")
    temperature = None
    if temperature_text is not None:
        try:
            temperature = float(temperature_text)
        except ValueError:
            temperature = -1.0
        if not 0 <= temperature <= 1:
            raise OpenAIError(
                400, "'temperature' must be a number from 0 to 1", param="temperature"
            )
    if (_text(form, "stream") or "false").lower() not in ("false", "0"):
        # The SDKs would read the answer as server-sent events; the whole text comes at once.
        raise OpenAIError(400, "Streaming is not supported: leave 'stream' out", param="stream")
    fmt = _choice(ResponseFormat, _text(form, "response_format") or "json", "response_format")
    granularities = [
        _choice(Granularity, str(v), "timestamp_granularities")
        for key in ("timestamp_granularities[]", "timestamp_granularities")
        for v in form.getlist(key)
    ]
    return Asked(
        task=task,
        language=language,
        prompt=_text(form, "prompt", MAX_PROMPT_CHARS),
        hotwords=_text(form, "hotwords", MAX_HOTWORDS_CHARS),
        response_format=fmt,
        temperature=temperature,
        granularities=frozenset(granularities),
    )
