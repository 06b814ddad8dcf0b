"""The dead-letter topic: failed jobs and events that could not be read, with where they came from.

Headers (all UTF-8): `stt-origin-topic`, `stt-origin-partition`, `stt-origin-offset`,
`stt-origin-timestamp` (ms), `stt-consumer-group`, `stt-attempt`, `stt-error-type`,
`stt-error-message`. The value is the original event's bytes, unchanged, so `stt replay` can
re-publish it as it was.
"""

from __future__ import annotations

import logging

from aiokafka.structs import ConsumerRecord

from stt_common.publisher import Publisher

log = logging.getLogger(__name__)
MAX_MESSAGE = 1000
# A callback that could not be delivered (the value is the result event, not a job to run):
# `stt replay dlq` leaves these alone.
WEBHOOK_FAILED = "webhook_failed"


def headers(
    origin: ConsumerRecord[bytes, bytes], group: str, attempt: int, error_type: str, message: str
) -> list[tuple[str, bytes]]:
    values = {
        "stt-origin-topic": origin.topic,
        "stt-origin-partition": str(origin.partition),
        "stt-origin-offset": str(origin.offset),
        "stt-origin-timestamp": str(origin.timestamp),
        "stt-consumer-group": group,
        "stt-attempt": str(attempt),
        "stt-error-type": error_type,
        "stt-error-message": message[:MAX_MESSAGE],
    }
    return [(k, v.encode()) for k, v in values.items()]


async def send(
    producer: Publisher,
    topic: str,
    origin: ConsumerRecord[bytes, bytes],
    *,
    group: str,
    attempt: int,
    error_type: str,
    message: str,
) -> None:
    await producer.send_and_wait(
        topic,
        origin.value if origin.value is not None else b"",
        key=origin.key,
        headers=headers(origin, group, attempt, error_type, message),
    )
    log.warning(
        "dead-lettered %s[%d]@%d: %s",
        origin.topic,
        origin.partition,
        origin.offset,
        message,
        extra={"error_type": error_type},
    )


def header_map(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in (record.headers or ())}
