"""The dead-letter topic: failed jobs and events that could not be read, with where they came from.

Headers (all UTF-8): `stt-origin-topic`, `stt-origin-partition`, `stt-origin-offset`,
`stt-origin-timestamp` (ms), `stt-consumer-group`, `stt-attempt`, `stt-error-type`,
`stt-error-message`. The value is the original event's bytes, unchanged, so `stt replay` can
re-publish it as it was.

SIZE. A dead letter never fails for its size, so that no record can stop its partition: an
original that, with these headers, would not fit in `MAX_RECORD_BYTES` (under the producer's
max_request_size and the broker's message.max.bytes, both ~1 MiB by default) is copied cut
to fit, with the header `stt-truncated` = its original size in bytes (value, then key).
A cut copy is evidence for operators, not a job to replay.
"""

from __future__ import annotations

import logging

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import ConsumerRecord

from stt_common.publisher import Publisher

log = logging.getLogger(__name__)
MAX_MESSAGE = 1000
MAX_RECORD_BYTES = 1_000_000  # value + key + headers of a dead letter, as the producer counts
MAX_KEY_BYTES = 1024
TRUNCATED = "stt-truncated"
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


def fit(
    value: bytes, key: bytes | None, headers: list[tuple[str, bytes]], limit: int = MAX_RECORD_BYTES
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    """(value, key, headers) cut to fit in `limit` bytes, marked `stt-truncated` when cut."""
    if DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) <= limit:
        return value, key, headers
    note = [(TRUNCATED, f"value={len(value)} key={len(key or b'')}".encode())]
    key = key[:MAX_KEY_BYTES] if key is not None else None
    room = limit - DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"", headers + note)
    return value[: max(0, room)], key, headers + note


async def send(
    publisher: Publisher,
    topic: str,
    origin: ConsumerRecord[bytes, bytes],
    *,
    group: str,
    attempt: int,
    error_type: str,
    message: str,
) -> None:
    value, key, marks = fit(
        origin.value if origin.value is not None else b"",
        origin.key,
        headers(origin, group, attempt, error_type, message),
    )
    await publisher.send_and_wait(topic, value, key=key, headers=marks)
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
