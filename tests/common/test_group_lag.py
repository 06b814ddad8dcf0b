"""The broker-side lag exporter against the real Kafka: lag per group and topic from committed
offsets, members per group (0 once the last member left: the "no transcriber" alert), records
written per topic role, and `exporter_up` 0 when the broker cannot be reached."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stt_common import bus, group_lag
from stt_common.settings import KafkaSettings

pytestmark = pytest.mark.infra


def value(gauge: Any, *labels: str) -> float:
    return float((gauge.labels(*labels) if labels else gauge)._value.get())


@pytest.fixture
async def settings(infra: Any) -> KafkaSettings:
    prefix = "lag" + uuid.uuid4().hex[:6]
    settings = KafkaSettings(
        bootstrap_servers=infra.kafka_bootstrap,
        topic_submit=f"{prefix}.jobs.submit",
        topic_results=f"{prefix}.jobs.results",
        topic_status=f"{prefix}.jobs.status",
        topic_dlq=f"{prefix}.jobs.dlq",
        topic_partitions=2,
        retry_delays=["1s"],
        transcriber_group=f"{prefix}-transcriber",
        projector_group=f"{prefix}-projector",
        webhooks_group=f"{prefix}-webhooks",
    )
    await bus.ensure_topics(settings)
    return settings


async def test_lag_members_and_written_records_per_group(settings: KafkaSettings) -> None:
    producer = bus.producer(settings)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(settings.topic_submit, b"job", key=f"k{i}".encode())
        await producer.send_and_wait(settings.topic_dlq, b"dead", key=b"k0")
    finally:
        await producer.stop()

    # A transcriber that took 2 of the 5 jobs and is still in the group.
    member = bus.consumer(settings, settings.topic_submit, group=settings.transcriber_group)
    await member.start()
    exporter = group_lag.GroupLagExporter(settings)
    try:
        records = await member.getmany(timeout_ms=10_000, max_records=2)
        for tp, batch in records.items():
            await member.commit({tp: batch[-1].offset + 1})
        taken = sum(len(batch) for batch in records.values())
        assert taken >= 1
        assert await exporter.round()
        transcriber, projector = settings.transcriber_group, settings.projector_group
        assert value(group_lag.GROUP_LAG, transcriber, "transcriber", settings.topic_submit) == (
            5 - taken
        )
        retry = settings.retry_topics()[0][0]
        assert value(group_lag.GROUP_LAG, transcriber, "transcriber", retry) == 0
        # The projector group never committed anything: everything counts as waiting.
        assert value(group_lag.GROUP_LAG, projector, "projector", settings.topic_submit) == 5
        assert value(group_lag.GROUP_MEMBERS, transcriber, "transcriber") == 1
        assert value(group_lag.GROUP_MEMBERS, projector, "projector") == 0
        assert value(group_lag.TOPIC_END_OFFSET, settings.topic_dlq, "dlq") == 1
        assert value(group_lag.TOPIC_END_OFFSET, settings.topic_submit, "submit") == 5
        assert value(group_lag.EXPORTER_UP) == 1
    finally:
        await member.stop()  # leaves the group
    try:
        assert await exporter.round()
        assert value(group_lag.GROUP_MEMBERS, settings.transcriber_group, "transcriber") == 0
        group, topic = settings.transcriber_group, settings.topic_submit
        lag = value(group_lag.GROUP_LAG, group, "transcriber", topic)
        assert lag == 5 - taken  # the lag stays known with no member left
    finally:
        await exporter._close()


async def test_an_unreachable_broker_reads_as_exporter_down(settings: KafkaSettings) -> None:
    dead = settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
    exporter = group_lag.GroupLagExporter(dead)
    assert not await exporter.round()
    assert value(group_lag.EXPORTER_UP) == 0
    back = group_lag.GroupLagExporter(settings)
    try:
        assert await back.round()
        assert value(group_lag.EXPORTER_UP) == 1
    finally:
        await back._close()


def test_describe_groups_is_capped_below_the_version_aiokafka_misreads() -> None:
    versions = {15: (0, 5)}  # a broker that offers DescribeGroups v0..v5
    built = group_lag._DescribeGroups(["g"]).prepare(versions)
    assert built.API_VERSION == 2
