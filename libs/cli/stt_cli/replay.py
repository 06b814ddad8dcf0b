"""`stt replay`: re-publish jobs to a submit topic under a new generation.

    stt replay dlq [--since 2h] [--until ISO] [--error-type T]... [--request-id ID]... [--dry-run]
    stt replay submit --since 24h [--until ISO] [--request-id ID]... [--dry-run]
    (either with --priority batch|interactive; default batch)

`dlq` replays failed jobs from the dead-letter topic (after the cause is fixed); `submit`
re-transcribes everything submitted in a time range to either lane (after a model upgrade, say).
Each job goes out once, keyed by its `request_id`, with generation = (the newest generation
known) + 1, so pollers see it move FAILED -> PROCESSING -> COMPLETED and no older attempt can
overwrite it. Replays go to the batch lane unless asked otherwise, so that a replay of yesterday's
failures never queues ahead of interactive work (see stt_common/consume/lanes.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from stt_common import bus, dead_letters, job_store
from stt_common.messages import RETRY_TOPIC, Lane, Source, SubmitEvent
from stt_common.publisher import Publisher
from stt_common.settings import Settings, parse_duration


@dataclass
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    error_types: set[str] = field(default_factory=set)
    request_ids: set[str] = field(default_factory=set)

    def accepts(self, record: ConsumerRecord[bytes, bytes], event: SubmitEvent) -> bool:
        error_type = dead_letters.header_map(record).get("stt-error-type")
        if error_type == dead_letters.WEBHOOK_FAILED:
            return False  # a result whose callback failed: the job itself is done
        if self.until and record.timestamp > self.until.timestamp() * 1000:
            return False
        if self.request_ids and event.request_id not in self.request_ids:
            return False
        if self.error_types:
            return error_type in self.error_types
        return True


def when(text: str) -> datetime:
    """'2h' (that long ago) or an ISO 8601 time."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def read_range(
    consumer: AIOKafkaConsumer, topic: str, since: datetime | None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from `since` up to the end as it was when reading began."""
    tps = await bus.topic_partitions(consumer, topic)
    consumer.assign(tps)
    end = await consumer.end_offsets(tps)
    if since is None:
        await consumer.seek_to_beginning(*tps)
    else:
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        for tp in tps:
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else end[tp])
    records: list[ConsumerRecord[bytes, bytes]] = []
    remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, batch in batches.items():
            records += [r for r in batch if r.offset < end[tp]]
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    return records


def latest_jobs(
    records: list[ConsumerRecord[bytes, bytes]], filters: Filters
) -> tuple[dict[str, SubmitEvent], int]:
    """The newest readable submit event per request id that passes the filters."""
    jobs: dict[str, SubmitEvent] = {}
    unreadable = 0
    for record in sorted(records, key=lambda r: r.timestamp):
        try:
            # A dead letter may come from a retry topic: its not_before is read, then cleared.
            event = bus.decode(SubmitEvent, record.value, {RETRY_TOPIC: True})
        except (ValidationError, ValueError):
            unreadable += 1
            continue
        if filters.accepts(record, event):
            jobs[event.job_id] = event
    return jobs, unreadable


async def replay(source: str, filters: Filters, dry_run: bool, lane: Lane = Lane.BATCH) -> int:
    settings = Settings()
    topics = [settings.kafka.topic_dlq] if source == "dlq" else settings.kafka.submit_topics()
    topic = ", ".join(topics)
    consumer = bus.consumer(settings.kafka, group=None)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        for name in topics:
            records += await read_range(consumer, name, filters.since)
    finally:
        await consumer.stop()
    jobs, unreadable = latest_jobs(records, filters)
    if unreadable:
        print(f"skipped {unreadable} unreadable events", file=sys.stderr)
    redis = job_store.connect(settings.redis)
    store = job_store.JobStore(redis, settings.redis.job_ttl)
    producer = Publisher(settings.kafka)
    if not dry_run:
        await producer.start()
    try:
        for event in jobs.values():
            current = await store.get(event.job_id)
            generation = max(event.generation, current.generation if current else 0) + 1
            again = event.model_copy(
                update={
                    "generation": generation,
                    "attempt": 1,
                    "not_before": None,
                    "source": Source.REPLAY,
                    "submitted_at": datetime.now(UTC),
                    "priority": lane,
                }
            )
            print(
                f"{'would replay' if dry_run else 'replayed'} {event.request_id} gen={generation}"
                f" ({lane})"
            )
            if not dry_run:
                await producer.send_and_wait(
                    settings.kafka.lane_topic(lane), bus.encode(again), key=bus.key(event.job_id)
                )
    finally:
        if not dry_run:
            await producer.stop()
        await redis.aclose()
    print(f"{len(jobs)} job(s) {'to replay' if dry_run else 'replayed'} from {topic}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=["dlq", "submit"], help="topic to replay from")
    parser.add_argument("--since", type=when, help="'2h' ago or an ISO time")
    parser.add_argument("--until", type=when, help="'10m' ago or an ISO time")
    parser.add_argument("--error-type", action="append", default=[], help="dlq only; repeatable")
    parser.add_argument("--request-id", action="append", default=[], help="repeatable")
    parser.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    parser.add_argument(
        "--priority",
        type=Lane,
        choices=list(Lane),
        default=Lane.BATCH,
        help="the lane the jobs go to (default batch: behind interactive work)",
    )
    args = parser.parse_args(argv)
    if args.source == "submit" and args.since is None and not args.request_id:
        parser.error("replaying the submit topic needs --since or --request-id")
    filters = Filters(args.since, args.until, set(args.error_type), set(args.request_id))
    return asyncio.run(replay(args.source, filters, args.dry_run, args.priority))
