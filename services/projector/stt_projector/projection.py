"""One event in, at most one job state out: the projector's pure step."""

from __future__ import annotations

from pydantic import ValidationError

from stt_common.messages import JobRecord, ResultEvent, SubmitEvent
from stt_common.settings import KafkaSettings


class PoisonEvent(ValueError):
    """An event that cannot be parsed or validated; it goes to the dead-letter topic."""


def record_from(topic: str, value: bytes | None, settings: KafkaSettings) -> JobRecord:
    """The job state an event on `topic` stands for."""
    if value is None:
        raise PoisonEvent("empty event value")
    try:
        if topic == settings.topic_results:
            return JobRecord.from_result(ResultEvent.model_validate_json(value))
        if topic == settings.topic_status:
            return JobRecord.model_validate_json(value)
        return JobRecord.from_submit(SubmitEvent.model_validate_json(value))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise PoisonEvent(f"invalid event on {topic}: {where}: {first['msg']}") from None
