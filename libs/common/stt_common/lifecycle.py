"""Around every consumer-group loop: stop on signals, start and stop the Kafka clients."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer

from stt_common.publisher import Publisher


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so the loop can finish its current work and leave."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@asynccontextmanager
async def kafka_clients(
    consumer: AIOKafkaConsumer, producer: Publisher
) -> AsyncIterator[None]:
    await producer.start()
    await consumer.start()
    try:
        yield
    finally:
        await consumer.stop()  # leaves the group at once, so partitions move without delay
        await producer.stop()
