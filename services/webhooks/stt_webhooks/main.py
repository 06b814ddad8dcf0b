"""`stt webhooks`: join the `stt-webhooks` group and deliver callbacks until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging

from stt_common import bus, job_store, lifecycle, logs, metrics, otel
from stt_common.publisher import Publisher
from stt_common.settings import Settings, SettingsError, WebhookSettings
from stt_webhooks.handler import Webhooks

log = logging.getLogger(__name__)


def check_signing(hooks: WebhookSettings) -> None:
    """Unsigned webhooks let anyone forge results: only with an explicit development switch."""
    if hooks.secret is None and not hooks.allow_unsigned:
        raise SettingsError(
            "STT_WEBHOOK_SECRET is not set: webhooks would go out unsigned "
            "(set STT_ALLOW_UNSIGNED_WEBHOOKS=true to allow that, for development only)"
        )
    if hooks.secret is None:
        log.warning("STT_WEBHOOK_SECRET is not set: webhooks go out UNSIGNED")


async def _main() -> int:
    settings = Settings()
    check_signing(settings.webhooks)
    otel.setup("webhooks")
    metrics.start_at_zero(metrics.WEBHOOK_DELIVERIES, metrics.WEBHOOK_OUTCOMES)
    metrics.serve(settings.metrics.port, settings.metrics.host)
    await bus.ensure_topics(settings.kafka)
    redis = job_store.connect(settings.redis)
    consumer = bus.consumer(settings.kafka, group=settings.kafka.webhooks_group)
    publisher = Publisher(settings.kafka)
    stop = lifecycle.stop_on_signals()
    webhooks = Webhooks(
        settings.kafka,
        settings.webhooks,
        consumer,
        publisher,
        redis,
        settings.redis.job_ttl,
        stop,
    )
    webhooks.subscribe()
    try:
        async with lifecycle.kafka_clients(consumer, publisher):
            log.info("webhooks ready")
            await webhooks.run()
    finally:
        await redis.aclose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="stt webhooks", description="Deliver job results to their callback_url"
    )
    parser.parse_args(argv)
    logs.setup("webhooks")
    return asyncio.run(_main())
