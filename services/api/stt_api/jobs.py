"""Accepting a job: the one path every submit takes (`/api/v1/transcribe` and the OpenAI routes).

The record is written PROCESSING with a short TTL, the submit event is published, then the record
is confirmed with the full TTL; a publish that fails removes the record again, so a job is either
accepted (its event is on Kafka) or was never there.
"""

from __future__ import annotations

import logging

from stt_api.submit_events import SubmitPublisher
from stt_common import metrics, otel, tracing
from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, SubmitEvent

log = logging.getLogger(__name__)


async def enqueue(
    store: JobStore, publisher: SubmitPublisher, event: SubmitEvent, *, pending_ttl: int
) -> tuple[JobRecord, bool]:
    """(the new record, True), or (the existing record, False) when `event.request_id` is known
    (nothing is published then). Raises `PublishError` when Kafka did not take the event.
    `pending_ttl`: STT_SUBMIT_TTL_BEFORE_PUBLISH."""
    record = JobRecord.from_submit(event)
    # Short TTL until Kafka has the event, so a crash in between leaves nothing that never ends.
    existing, written = await store.create(record, ttl=pending_ttl)
    if existing is not None:
        return existing, False
    try:
        # The request's trace (set by the TraceContext middleware) goes out as a Kafka header;
        # with OTEL_EXPORTER_OTLP_ENDPOINT this step is exported as the "publish" span.
        with otel.step("publish", "PRODUCER"):
            await publisher.publish(event, tracing.current.get())
    except BaseException:
        await store.discard(record.job_id, written)
        raise
    await store.confirm(record)
    metrics.JOBS_SUBMITTED.inc()
    log.info("job accepted", extra={"request_id": record.request_id})
    return record, True
