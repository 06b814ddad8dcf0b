"""The process's Kafka producer, replaced by a fresh one when aiokafka's cannot recover.

An idempotent producer numbers its batches per partition. When the broker's idea of that
numbering no longer matches the producer's (an unclean broker restart dropped the last
batches, or the producer's state expired), the broker answers OutOfOrderSequenceNumber or
UnknownProducerId for every later batch to that partition. The Java client then bumps its
epoch and carries on; aiokafka (0.14) does not, so every publish would fail for the life of
the process. A new producer gets a new producer id, so its numbering starts clean: that is
what `Publisher` does, once per failure, then sends again. Nothing is duplicated by the
second send: the broker refused the first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata

from stt_common import bus
from stt_common.settings import KafkaSettings

log = logging.getLogger(__name__)
UNRECOVERABLE = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)
STOP_OLD_SECONDS = 5.0  # a broken producer's stop() can wait on the broker; never on us


class Publisher:
    """Idempotent, acks=all publishing that outlives a broken producer."""

    def __init__(self, settings: KafkaSettings, **overrides: Any) -> None:
        self.settings = settings
        self.overrides = overrides
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self.replacements = 0  # how often a broken producer was replaced (tests, metrics)

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        await self._current()

    async def stop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> RecordMetadata:
        producer = await self._current()
        try:
            return await producer.send_and_wait(topic, value, key=key, headers=headers)
        except UNRECOVERABLE as exc:
            log.warning("Kafka producer is unusable (%r); starting a new one", exc)
            await self._replace(producer)
        producer = await self._current()
        return await producer.send_and_wait(topic, value, key=key, headers=headers)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue a record; the future resolves once Kafka acknowledges it. Awaiting a batch of
        these together costs one round trip, not one each. A broken producer is replaced for
        the next send; the caller sends the failed records again."""
        producer = await self._current()
        future: asyncio.Future[RecordMetadata] = await producer.send(
            topic, value, key=key, headers=headers
        )
        future.add_done_callback(lambda done: self._after(producer, done))
        return future

    def _after(self, producer: AIOKafkaProducer, done: asyncio.Future[RecordMetadata]) -> None:
        if not done.cancelled() and isinstance(done.exception(), UNRECOVERABLE):
            log.warning("Kafka producer is unusable (%r); starting a new one", done.exception())
            task = asyncio.get_running_loop().create_task(self._replace(producer))
            _retiring.add(task)
            task.add_done_callback(_retiring.discard)

    async def _current(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None and _sender_died(self._producer):
                log.warning("Kafka producer's sender stopped; starting a new one")
                self._retire(self._producer)
                self._producer = None
            if self._producer is None:
                producer = bus.producer(self.settings, **self.overrides)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _replace(self, broken: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is broken:  # another send may have replaced it already
                self._retire(broken)
                self._producer = None

    def _retire(self, producer: AIOKafkaProducer) -> None:
        self.replacements += 1
        task = asyncio.create_task(_stop_quietly(producer))
        _retiring.add(task)
        task.add_done_callback(_retiring.discard)


_retiring: set[asyncio.Task[None]] = set()  # strong references until each stop finishes


def _sender_died(producer: AIOKafkaProducer) -> bool:
    # aiokafka fails every later send once its sender task has ended with an error.
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), STOP_OLD_SECONDS)
    except Exception as exc:  # it is being dropped; only say so
        log.info("broken Kafka producer did not stop cleanly: %r", exc)
