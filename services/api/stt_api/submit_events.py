"""Publishes submit events: the API's only write to Kafka."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from stt_common import bus
from stt_common.messages import Lane, SubmitEvent
from stt_common.publisher import UNRECOVERABLE, Publisher
from stt_common.settings import KafkaSettings
from stt_common.tracing import TraceContext

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The event was not acknowledged by Kafka in time."""


class PublishRefused(PublishError):
    """Nothing reached the producer (no connection, no metadata in time) or the broker refused
    the record: the job certainly does not exist, and the API removes its record."""


class PublishUnknown(PublishError):
    """The producer holds the event but Kafka did not acknowledge it in time: it may still be
    delivered later. The API keeps the job's record and tells the client to resubmit with the
    same request_id, which sends the same event again (see stt_api.jobs)."""


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
        """Send the event; `trace` goes out as its `traceparent` header. Raises PublishRefused
        when the event certainly did not get out, PublishUnknown when it may still."""
        headers = trace.kafka_headers() if trace is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.publish_timeout
        value, key = bus.encode(event), bus.key(event.job_id)
        topic = self.settings.lane_topic(event.priority or Lane.INTERACTIVE)  # a lane per topic
        for resend in (False, True):
            # Step 1, handing the record to the producer: until it returns, nothing is queued,
            # so a timeout or error here (Kafka unreachable at start, no metadata) is a refusal.
            try:
                async with asyncio.timeout_at(deadline):
                    sent = await self._publisher.send(topic, value, key=key, headers=headers)
            except TimeoutError as exc:
                raise PublishRefused(self._late("take")) from exc
            except (KafkaError, OSError) as exc:
                raise PublishRefused(f"Kafka refused the job: {exc.__class__.__name__}") from exc
            # Step 2, the acknowledgement: the producer keeps the record and may still deliver it
            # after a timeout here (shielded: cancelling would not take it back anyway).
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(sent)
                return
            except UNRECOVERABLE as exc:  # the broker refused it; `Publisher` starts a new one
                if resend:
                    raise PublishRefused(f"Kafka refused the job: {type(exc).__name__}") from exc
            except TimeoutError as exc:
                raise PublishUnknown(self._late("acknowledge")) from exc
            except (KafkaError, OSError) as exc:
                why = f"Kafka did not confirm the job ({type(exc).__name__})"
                raise PublishUnknown(why) from exc

    def _late(self, step: str) -> str:
        return f"Kafka did not {step} the job within {self.settings.publish_timeout:g}s"

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
