"""`stt transcriber`: join the consumer group and transcribe jobs until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import time

from stt_common import bus, cancellation, job_store, lifecycle, logs, metrics, otel
from stt_common.messages import SubmitEvent
from stt_common.model_files import resolve_model
from stt_common.publisher import Publisher
from stt_common.settings import Settings
from stt_transcriber import heap
from stt_transcriber.batch_engine import BatchEngine
from stt_transcriber.batcher import Batcher, BatchLimits, ManyEngine
from stt_transcriber.engine import Engine, WhisperEngine
from stt_transcriber.errors import ERROR_TYPES
from stt_transcriber.fake_engine import FakeEngine, FakeManyEngine
from stt_transcriber.job_runner import JobRunner
from stt_transcriber.worker import Worker

log = logging.getLogger(__name__)


def load_engine(settings: Settings) -> Engine:
    if settings.model.engine == "fake":
        return FakeEngine(delay=settings.model.fake_delay)
    started = time.monotonic()
    model = resolve_model(settings.model.model, settings.model.cache_dir)
    engine = WhisperEngine(model, settings.model, settings.fetch.max_audio_seconds)
    metrics.MODEL_LOAD_SECONDS.set(time.monotonic() - started)
    log.info("model %s loaded in %.2fs", settings.model.model, time.monotonic() - started)
    return engine


def batcher_for(engine: Engine, settings: Settings) -> Batcher | None:
    """Cross-job batches when STT_CROSS_JOB_BATCH > 1, on the same model (no second copy)."""
    model = settings.model
    if model.cross_job_batch <= 1:
        return None
    many: ManyEngine
    if isinstance(engine, WhisperEngine):
        many = BatchEngine(engine)
    elif isinstance(engine, FakeEngine):
        many = FakeManyEngine(engine)
    else:
        return None
    limits = BatchLimits(
        model.cross_job_batch,
        model.batch_wait_ms / 1000,
        model.batch_max_seconds,
        prepare_beside_model=model.device != "cpu",
    )
    return Batcher(engine, many, limits)


async def _main(settings: Settings) -> int:
    worker_id = settings.worker.id or f"{socket.gethostname()}-{os.getpid()}"
    otel.setup("transcriber")
    metrics.start_at_zero(metrics.JOBS_FAILED, ERROR_TYPES)
    metrics.serve(settings.metrics.port, settings.metrics.host)
    engine = await asyncio.to_thread(load_engine, settings)  # once per process, not per job
    await bus.ensure_topics(settings.kafka)
    redis = job_store.connect(settings.redis)
    store = job_store.JobStore(redis, settings.redis.job_ttl)
    consumer = bus.consumer(
        settings.kafka,
        group=settings.kafka.transcriber_group,
        client_id=worker_id,
        max_poll_records=2 * settings.model.cross_job_batch,
    )
    publisher = Publisher(settings.kafka)
    stop = lifecycle.stop_on_signals()

    async def cancelled(job: SubmitEvent) -> bool:
        return await cancellation.covers(redis, job.job_id, job.submitted_at)

    batcher = batcher_for(engine, settings)
    runner = JobRunner(
        engine,
        settings.fetch,
        settings.minio,
        settings.worker.work_dir,
        worker_id,
        cancelled,
        batcher,
    )
    worker = Worker(
        settings.kafka,
        runner,
        store,
        consumer,
        publisher,
        stop,
        settings.worker.shutdown_grace,
        settings.worker.claim_lease,
        batch=settings.model.cross_job_batch if batcher is not None else 1,
    )
    worker.subscribe()
    try:
        async with lifecycle.kafka_clients(consumer, publisher):
            batching = f"cross-job batches of up to {batcher.limits.size}" if batcher else "one job"
            log.info("transcriber %s ready (%s at a time)", worker_id, batching)
            await worker.run()
    finally:
        await redis.aclose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt transcriber", description="Run a transcriber worker")
    parser.parse_args(argv)
    logs.setup("transcriber")
    settings = Settings()
    # Before any thread: see heap.py. Cross-job batches allocate per batch as the pipeline does.
    heap.tune(batched=settings.model.batch_size > 0 or settings.model.cross_job_batch > 1)
    return asyncio.run(_main(settings))
