"""`stt projector [--rebuild]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket

from stt_common import job_store, lifecycle, logs, metrics, otel
from stt_common.group_lag import GroupLagExporter
from stt_common.settings import Settings
from stt_projector.handler import run_projector
from stt_projector.rebuild import rebuild
from stt_projector.restore import watch_store

log = logging.getLogger(__name__)


async def _main(rebuild_only: bool) -> int:
    settings = Settings()
    if settings.kafka.status_retention_ms < settings.redis.job_ttl * 1000:
        log.warning(
            "KAFKA_STATUS_RETENTION_MS is shorter than REDIS_JOB_TTL: a rebuild cannot restore "
            "jobs older than the retention that Redis would still hold"
        )
    redis = job_store.connect(settings.redis)
    store = job_store.JobStore(redis, settings.redis.job_ttl)
    try:
        if rebuild_only:
            counts = await rebuild(settings.kafka, store)
            print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing to rebuild")
            return 0
        otel.setup("projector")
        serving = metrics.serve(settings.metrics.port, settings.metrics.host)
        stop = lifecycle.stop_on_signals()
        # The lag of every group, from the broker: still there when every transcriber is dead.
        exporting = None
        if serving:
            exporter = GroupLagExporter(settings.kafka, settings.metrics.lag_every)
            exporting = asyncio.create_task(exporter.run(stop))
        # A Redis that lost its data is rebuilt from the status topic by itself (restore.py).
        owner = f"{socket.gethostname()}-{os.getpid()}"
        restoring = asyncio.create_task(watch_store(settings.kafka, store, stop, owner))
        try:
            await run_projector(settings.kafka, store, stop)
        finally:
            for task in (exporting, restoring):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        return 0
    finally:
        await redis.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="stt projector", description="Project job states into Redis"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="restore Redis from the status topic, then exit"
    )
    args = parser.parse_args(argv)
    logs.setup("projector")
    return asyncio.run(_main(args.rebuild))
