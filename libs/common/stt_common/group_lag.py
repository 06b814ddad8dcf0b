"""Consumer lag of every stt consumer group, read from the broker, as Prometheus gauges.

`stt_consumer_lag` (metrics.py) is what one member sees of its own partitions: it vanishes with
the member. The alert "jobs wait and no transcriber consumes them" needs the lag while every
transcriber is dead, so the projector also runs this loop: every `every` seconds it asks the
broker for each group's committed offsets (admin client), the topics' end offsets (a group-less
consumer) and the group's member count, and sets:

- `stt_kafka_group_lag{group, role, topic}`: end offset minus committed offset, summed over the
  topic's partitions (a partition the group never committed counts from its first offset);
- `stt_kafka_group_members{group, role}`: members of the group right now (0: nobody consumes);
- `stt_kafka_topic_end_offset{topic, role}`: records ever written to the topic (the sum of its
  partitions' end offsets);
- `stt_kafka_exporter_up`: 1 when the last round reached the broker, 0 when it did not.

A group's `role` is transcriber, projector or webhooks; a topic's is submit (the interactive
lane), submit_batch (the batch lane), results, status, dlq or retry: rules and panels select by
role, not by the configured names
(`increase(stt_kafka_topic_end_offset{role="dlq"}[5m]) > 0`: dead letters arrive).

Labels are by group and topic so that per-lane topics (one topic per lane) show up as their own
series without a change here. Every replica of the projector exports the same values: dashboards
and rules take `max by (...)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request
from aiokafka.structs import TopicPartition
from prometheus_client import Gauge

from stt_common import bus
from stt_common.messages import Lane
from stt_common.settings import KafkaSettings

log = logging.getLogger(__name__)
EXPORT_EVERY = 15.0  # seconds between rounds; Prometheus scrapes every 15 s by default
ROUND_TIMEOUT = 10.0  # a round that hangs longer counts as "broker unreachable"

GROUP_LAG = Gauge(
    "stt_kafka_group_lag", "Records not yet committed by a consumer group",
    ["group", "role", "topic"],
)  # fmt: skip
GROUP_MEMBERS = Gauge("stt_kafka_group_members", "Members of a consumer group", ["group", "role"])
TOPIC_END_OFFSET = Gauge(
    "stt_kafka_topic_end_offset", "Records ever written to a topic (all partitions)",
    ["topic", "role"],
)  # fmt: skip
EXPORTER_UP = Gauge("stt_kafka_exporter_up", "1 when the last lag round reached Kafka")


@dataclass(frozen=True)
class Groups:
    """Which topics each group consumes, and the role of each topic."""

    consumed: dict[str, tuple[str, ...]]  # group -> its topics
    group_roles: dict[str, str]  # group -> transcriber | projector | webhooks
    roles: dict[str, str]  # topic -> submit | results | status | dlq | retry

    @classmethod
    def of(cls, settings: KafkaSettings) -> Groups:
        retries = tuple(topic for topic, _ in settings.retry_topics())
        roles = {
            settings.topic_submit: "submit",
            settings.lane_topic(Lane.BATCH): "submit_batch",
            settings.topic_results: "results",
            settings.topic_status: "status",
            settings.topic_dlq: "dlq",
            **dict.fromkeys(retries, "retry"),
        }
        consumed = {
            settings.transcriber_group: (*settings.submit_topics(), *retries),
            settings.projector_group: (*settings.submit_topics(), settings.topic_results),
            settings.webhooks_group: (settings.topic_results,),
        }
        group_roles = {
            settings.transcriber_group: "transcriber",
            settings.projector_group: "projector",
            settings.webhooks_group: "webhooks",
        }
        return cls(consumed, group_roles, roles)


class _DescribeGroups(
    Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]  # type: ignore[misc]
):
    """DescribeGroups at most v2: aiokafka 0.14 decodes the v3 answer with v2's schema (no
    authorized_operations) and fails with "Buffer underrun", so its describe_consumer_groups()
    cannot be used against Kafka >= 2.3."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(
        self,
        request_struct_class: type[
            DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2
        ],
    ) -> DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2:
        return request_struct_class(self.groups)


async def group_members(admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, int]:
    """How many members each group has now (0 for a group with none, or unknown)."""
    members = dict.fromkeys(groups, 0)
    for group in groups:
        coordinator = await admin.find_coordinator(group)
        response = await admin._send_request(_DescribeGroups([group]), coordinator)
        for entry in response.groups:  # (error, group_id, state, protocol_type, protocol,
            if entry[1] in members:  # members, ...)
                members[entry[1]] = len(entry[5])
    return members


class GroupLagExporter:
    """Sets the gauges above from the broker, every `every` seconds until stopped."""

    def __init__(self, settings: KafkaSettings, every: float = EXPORT_EVERY) -> None:
        self.settings = settings
        self.groups = Groups.of(settings)
        self.every = every
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.round()
                try:
                    await asyncio.wait_for(stop.wait(), self.every)
                except TimeoutError:
                    pass
        finally:
            await self._close()

    async def round(self) -> bool:
        """One update of every gauge; False (and exporter_up 0) when Kafka did not answer."""
        try:
            await asyncio.wait_for(self._update(), ROUND_TIMEOUT)
        except Exception as exc:  # metrics must never stop the projector
            log.debug("consumer group lag not exported: %r", exc)
            EXPORTER_UP.set(0)
            await self._close()  # reconnect from scratch next round
            return False
        EXPORTER_UP.set(1)
        return True

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            options = bus.client_options(self.settings)
            admin = AIOKafkaAdminClient(**options)
            offsets = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
            try:
                await admin.start()
                await offsets.start()
            except BaseException:
                await admin.close()
                await offsets.stop()
                raise
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def _close(self) -> None:
        admin, offsets, self._admin, self._offsets = self._admin, self._offsets, None, None
        if admin is not None:
            await admin.close()
        if offsets is not None:
            await offsets.stop()

    async def _update(self) -> None:
        admin, offsets = await self._clients()
        partitions: list[TopicPartition] = []
        for topic in self.groups.roles:
            try:
                partitions += await bus.topic_partitions(offsets, topic)
            except LookupError:
                continue  # not created yet: nothing written, nothing to consume
        ends = await offsets.end_offsets(partitions)
        starts = await offsets.beginning_offsets(partitions)
        written: dict[str, int] = defaultdict(int)
        for tp, end in ends.items():
            written[tp.topic] += end
        for topic, total in written.items():
            TOPIC_END_OFFSET.labels(topic, self.groups.roles[topic]).set(total)

        members = await group_members(admin, list(self.groups.consumed))
        for group, count in members.items():
            GROUP_MEMBERS.labels(group, self.groups.group_roles[group]).set(count)

        for group, topics in self.groups.consumed.items():
            mine = [tp for tp in partitions if tp.topic in topics]
            committed = await admin.list_consumer_group_offsets(group, partitions=mine)
            lag: dict[str, int] = dict.fromkeys((tp.topic for tp in mine), 0)
            for tp in mine:
                done = committed.get(tp)
                position = done.offset if done is not None and done.offset >= 0 else starts[tp]
                lag[tp.topic] += max(0, ends[tp] - position)
            for topic, value in lag.items():
                GROUP_LAG.labels(group, self.groups.group_roles[group], topic).set(value)
