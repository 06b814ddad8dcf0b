"""Publishes submit events: the API's only write to Kafka."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from stt_common import bus
from stt_common.messages import SubmitEvent
from stt_common.publisher import Publisher
from stt_common.settings import KafkaSettings
from stt_common.tracing import TraceContext

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The event was not acknowledged by Kafka in time; the job was not accepted."""


class SubmitPublisher:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        # Started lazily so the API can come up (and answer 503) while Kafka is still down.
        self._publisher = Publisher(settings)

    @property
    def started(self) -> bool:
        return self._publisher.started

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._publisher.start(), self.settings.publish_timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("Kafka not reachable yet (%s); submits answer 503 until it is", exc)

    async def publish(self, event: SubmitEvent, trace: TraceContext | None = None) -> None:
        """Send the event; `trace` goes out as its `traceparent` header."""
        headers = trace.kafka_headers() if trace is not None else None
        await self._send(self.settings.topic_submit, event.job_id, bus.encode(event), headers)

    async def forget(self, job_id: str) -> None:
        """Tombstone the job on the compacted status topic, so a rebuild cannot restore it."""
        await self._send(self.settings.topic_status, job_id, None)

    async def _send(
        self,
        topic: str,
        request_id: str,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await self._publisher.send_and_wait(
                    topic, value, key=bus.key(request_id), headers=headers
                )
        except TimeoutError as exc:
            raise PublishError(
                f"Kafka did not acknowledge the job within {self.settings.publish_timeout:g}s"
            ) from exc
        except (KafkaError, OSError) as exc:
            raise PublishError(f"Kafka refused the job: {exc.__class__.__name__}") from exc

    async def close(self) -> None:
        await self._publisher.stop()
