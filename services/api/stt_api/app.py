"""The FastAPI application and its lifetime (Redis pool, Kafka producer)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from stt_api import docs_pages, errors, guard, polling
from stt_api.auth import accepted
from stt_api.body_limit import BodyLimit
from stt_api.deps import Wiring
from stt_api.http_metrics import HttpMetrics
from stt_api.long_poll import LongPolls
from stt_api.media_store import MediaStore
from stt_api.openai_format import served_model_id
from stt_api.rate_limit import RateLimiter
from stt_api.routes import health, metrics, openai, transcribe, uploads
from stt_api.submit_events import SubmitPublisher
from stt_api.trace_context import TraceMiddleware
from stt_api.upload_slots import UploadSlots
from stt_common import bus, job_store, otel
from stt_common.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    otel.setup("api")  # span export, only when OTEL_EXPORTER_OTLP_ENDPOINT is set
    api_keys = accepted(settings.api)  # fails before serving when no key is configured

    # Built before serving: nothing here holds a connection (MinIO's client connects per call).
    poll_advisor = polling.PollAdvisor(settings.api.poll_rtf, settings.api.poll_hold_seconds)
    media_store = MediaStore(settings.minio)
    upload_slots = UploadSlots(settings.api.uploads_per_key, settings.api.uploads_max_active)
    served_model = served_model_id(settings.model.model)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = job_store.connect(settings.redis)
        store = job_store.JobStore(redis, settings.redis.job_ttl)
        wiring = Wiring(
            settings=settings,
            job_store=store,
            publisher=SubmitPublisher(settings.kafka),
            long_polls=LongPolls(store),
            poll_advisor=poll_advisor,
            media_store=media_store,
            upload_slots=upload_slots,
            rate_limiter=RateLimiter(redis, settings.api.rate_limit_per_minute),
            api_keys=api_keys,
            served_model=served_model,
        )
        app.state.wiring = wiring  # read through `stt_api.deps`, and by the guard
        try:
            await bus.ensure_topics(settings.kafka, attempts=5)
        except ConnectionError:
            pass  # submits answer 503 until Kafka is back; the producer reconnects by itself
        await wiring.publisher.start()
        # Everything built so far lives as long as the process: out of the collector's sight,
        # so a full collection (a pause for every request in flight) scans only request garbage.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await wiring.publisher.close()
            await wiring.rate_limiter.drain()
            await wiring.long_polls.close()
            await redis.aclose()
            media_store.close()

    app = FastAPI(
        title="stt",
        summary="Asynchronous speech-to-text: submit a media URL, poll for the transcript",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by `docs_pages`, from assets in a package rather than a CDN
        redoc_url=None,
    )
    errors.install(app)
    app.add_middleware(TraceMiddleware)  # innermost: the route's task runs in the request's trace
    # Uploads (and the OpenAI routes' forms) bound their bodies by STT_MAX_UPLOAD_BYTES themselves.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.max_body_bytes,
        exempt=frozenset({uploads.PATH, *openai.PATHS}),
    )
    app.add_middleware(guard.ApiGuard)  # before the body is read: 401 and 429 cost little
    app.add_middleware(HttpMetrics)  # outermost: counts every answer, 413s included
    # Routes are matched in order: the polled one first.
    app.include_router(transcribe.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(uploads.router)
    openai.install(app)
    docs_pages.install(app)

    def openapi() -> dict[str, Any]:
        return guard.document(FastAPI.openapi(app))

    app.openapi = openapi  # type: ignore[method-assign]
    return app
