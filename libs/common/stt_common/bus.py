"""Kafka clients configured from settings, topic creation, and event (de)serialisation.

Every event is JSON (UTF-8) keyed by its job id (`stt_common.tenants`: the `request_id` for the
default tenant), so all events of one job land on one partition in order, and the compacted
status topic keeps one value per job.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import BaseModel

from stt_common.settings import KafkaSettings

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseModel)
Record: TypeAlias = ConsumerRecord[bytes, bytes]  # what every consumer here reads


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        options["ssl_context"] = context
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    options = client_options(settings) | {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "request_timeout_ms": int(settings.publish_timeout * 1000) + 1000,
    }
    return AIOKafkaProducer(**(options | overrides))


def consumer(
    settings: KafkaSettings, *topics: str, group: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    options = client_options(settings) | {
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """All partitions of `topic`, from fresh metadata (for group-less readers that assign)."""
    # aiokafka's public partitions_for_topic() only knows topics already subscribed to.
    cluster = await consumer._client.fetch_all_metadata()
    partitions = cluster.partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"topic {topic} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    partitions, replicas = settings.topic_partitions, settings.replication_factor
    return [
        *(
            NewTopic(  # one per priority lane
                topic,
                partitions,
                replicas,
                topic_configs={"retention.ms": str(settings.submit_retention_ms)},
            )
            for topic in settings.submit_topics()
        ),
        NewTopic(settings.topic_results, partitions, replicas),
        # The status topic is the changelog of Redis: compaction keeps each job's last state,
        # and deletion drops states older than any job Redis still holds, so that the topic
        # stops growing with every job ever submitted.
        NewTopic(
            settings.topic_status,
            partitions,
            replicas,
            topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(settings.status_retention_ms),
                "min.compaction.lag.ms": "60000",
            },
        ),
        NewTopic(settings.topic_dlq, partitions, replicas),
        *(NewTopic(name, partitions, replicas) for name, _ in settings.retry_topics()),
    ]


async def ensure_topics(settings: KafkaSettings, attempts: int = 30) -> None:
    """Create the topics that are missing; safe to run from every process at start."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    for attempt in range(1, attempts + 1):
        try:
            await admin.start()
            break
        except Exception as exc:  # the broker may still be starting
            if attempt == attempts:
                raise ConnectionError(
                    f"Kafka at {settings.bootstrap_servers} is unreachable: {exc}"
                ) from exc
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def decode(model: type[E], value: bytes | None, context: dict[str, Any] | None = None) -> E:
    if value is None:
        raise ValueError("empty event value")
    return model.model_validate_json(value, context=context)


def key(request_id: str) -> bytes:
    return request_id.encode()
