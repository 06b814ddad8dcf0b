"""Accepting a job: the one path every submit takes (`/api/v1/transcribe` and the OpenAI routes).

The record is written PROCESSING with a short TTL, the submit event is published, then the record
is confirmed with the full TTL. A publish that certainly did not get out (PublishRefused)
removes the record again: the job was never there. One whose outcome is unknown (PublishUnknown:
the producer may still deliver it) keeps the record and the event (stt_api.unconfirmed), and a
resubmit with the same request_id publishes that event again: one job either way.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from stt_api import unconfirmed
from stt_api.submit_events import PublishError, PublishRefused, PublishUnknown, SubmitPublisher
from stt_common import metrics, otel, store_epoch, tracing
from stt_common.job_store import JobStore
from stt_common.messages import JobRecord, SubmitEvent

log = logging.getLogger(__name__)
REFUSED, UNKNOWN = "refused", "unknown"  # X-Submit-Outcome of a 503


class StoreUnavailable(RedisError):
    """Redis failed during a submit. `outcome`: REFUSED before the event could be published
    (nothing queued), UNKNOWN once it was, or when an earlier publish's outcome is unknown; a
    resubmit with the same request_id is safe either way. Still a RedisError: routes that do not
    say the outcome answer the generic 503 (stt_api.errors)."""

    def __init__(self, outcome: str, cause: RedisError) -> None:
        super().__init__(str(cause))
        self.outcome = outcome


async def enqueue(
    store: JobStore, publisher: SubmitPublisher, event: SubmitEvent, *, pending_ttl: int
) -> tuple[JobRecord, bool]:
    """(the new record, True), or (the existing record, False) when `event.request_id` is known
    (nothing is published then). Raises `PublishError` when Kafka did not take the event.
    `pending_ttl`: STT_SUBMIT_TTL_BEFORE_PUBLISH."""
    record = JobRecord.from_submit(event)
    try:
        # One round trip: no submit while the store is being restored (a store that lost its
        # data cannot tell a finished job from a new one: StoreRestoring, answered 503); a short
        # TTL until Kafka has the event, so a crash in between leaves nothing that never ends;
        # a known job comes back with its unconfirmed event, if any.
        created = await store.create_if_ready(
            record,
            ttl=pending_ttl,
            epoch_key=store_epoch.epoch_key(publisher.settings.topic_status),
            pending_event_key=unconfirmed.unconfirmed_key(record.job_id),
        )
    except RedisError as exc:
        raise StoreUnavailable(REFUSED, exc) from exc
    if created.existing is not None:
        try:
            return await _resend_unconfirmed(
                store, publisher, created.existing, unconfirmed.parse(created.pending_event)
            )
        except RedisError as exc:  # the job exists; its first publish may still be unknown
            raise StoreUnavailable(UNKNOWN, exc) from exc
    try:
        # The request's trace (set by the TraceMiddleware) goes out as a Kafka header;
        # with OTEL_EXPORTER_OTLP_ENDPOINT this step is exported as the "publish" span.
        with otel.step("publish", "PRODUCER"):
            await publisher.publish(event, tracing.current.get())
    except PublishUnknown as unknown:
        try:
            await unconfirmed.remember(store.redis, event, pending_ttl)  # the record stays too
        except RedisError as exc:
            raise StoreUnavailable(UNKNOWN, exc) from unknown
        raise
    except BaseException:
        try:
            await store.discard(record.job_id, created.written)
        except RedisError as exc:  # the short TTL clears the record
            raise StoreUnavailable(REFUSED, exc) from exc
        raise
    try:
        await store.confirm(record)
    except RedisError as exc:  # the event is out: the job runs; a resubmit answers it
        raise StoreUnavailable(UNKNOWN, exc) from exc
    metrics.JOBS_SUBMITTED.inc()
    log.info("job accepted", extra={"request_id": record.request_id})
    return record, True


async def _resend_unconfirmed(
    store: JobStore, publisher: SubmitPublisher, existing: JobRecord, event: SubmitEvent | None
) -> tuple[JobRecord, bool]:
    """A known job; if its first publish's outcome is unknown (`event`, kept by
    `stt_api.unconfirmed`), the same event is sent again and the answer is (record, True) once
    Kafka acknowledges it. Any failure here is still unknown: the first copy may yet arrive."""
    if event is None:
        return existing, False
    try:
        with otel.step("publish", "PRODUCER"):
            await publisher.publish(event, tracing.current.get())
    except PublishRefused as exc:
        raise PublishUnknown(str(exc)) from exc
    await store.confirm(existing)
    await unconfirmed.settle(store.redis, existing.job_id)
    metrics.JOBS_SUBMITTED.inc()
    log.info("job accepted on resubmit", extra={"request_id": existing.request_id})
    return existing, True


OUTCOME_HEADER = "X-Submit-Outcome"


def describe_failure(exc: PublishError) -> tuple[str, str]:
    """(outcome header value, detail) of a 503 for a publish that failed."""
    if isinstance(exc, PublishUnknown):
        return UNKNOWN, (
            f"{exc}: the job may still be accepted; resubmit with the same request_id "
            "(safe: it never makes a second job)"
        )
    return REFUSED, f"{exc}; the job was not accepted; retry later"
