"""Optional OpenTelemetry span export, joined to the trace context that `tracing` carries.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then
`setup(service)` imports the tracing SDK and the exporter (the `otel` extra; neither is
imported otherwise) and exports spans over OTLP/HTTP, configured by the standard OTEL_* variables
(headers, sampling, batch delays; OTEL_SERVICE_NAME overrides `stt-<service>`).

Spans are ours, not the SDK's idea of "current": each is a `tracing.TraceContext`, so
the exported span ids are exactly the span ids the Kafka `traceparent` headers carry. A hop
(`hop`) exports the context `tracing.current` already holds, with the incoming message's span
as parent; a step inside it (`step`) makes a child, exports it, and is `tracing.current` while
it runs, so a message sent inside the step names it as parent. Hence one trace:

    submit (api) > publish > consume (transcriber) > download, probe, transcribe > decode;
    result publish > projection (projector), webhook (webhooks)

When export is off every function here is a no-op that changes nothing (not even
`tracing.current`).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from stt_common import tracing
from stt_common.tracing import TraceContext

log = logging.getLogger(__name__)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
Attributes = dict[str, str | int | float | bool]

_tracer: Any = None  # an opentelemetry Tracer once setup() enabled export
# The ids the next span must get (the SDK asks its IdGenerator; ours answers from here).
_wanted: ContextVar[TraceContext | None] = ContextVar("stt_otel_wanted", default=None)


def enabled() -> bool:
    return _tracer is not None


def wanted() -> bool:
    """True when the environment asks for span export (and OTEL_SDK_DISABLED does not veto it)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def setup(service: str) -> bool:
    """Start exporting this process's spans if the environment asks for it; idempotent."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import IdGenerator
    except ImportError:
        log.error("OTEL_EXPORTER_OTLP_ENDPOINT is set but the `otel` extra is not installed "
                  "(pip install 'stt[otel]'); no spans are exported")  # fmt: skip
        return False

    class TraceContextIds(IdGenerator):
        """The ids of the TraceContext being exported; random ones for anything else."""

        def generate_span_id(self) -> int:
            context = _wanted.get()
            return int(context.span_id, 16) if context else random.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            context = _wanted.get()
            return int(context.trace_id, 16) if context else random.getrandbits(128) or 1

    name = os.environ.get("OTEL_SERVICE_NAME") or f"stt-{service}"
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}), id_generator=TraceContextIds()
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    atexit.register(provider.shutdown)  # flushes what is still queued
    _tracer = provider.get_tracer("stt")
    log.info("exporting OpenTelemetry spans as %s", name)
    return True


@contextmanager
def _span(
    name: str,
    context: TraceContext,
    parent: TraceContext | None,
    attributes: Attributes | None = None,
    kind: str = "INTERNAL",
    start_time: int | None = None,
) -> Iterator[None]:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    if parent is not None and parent.trace_id == context.trace_id:
        remote = trace.SpanContext(
            int(parent.trace_id, 16),
            int(parent.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(parent.flags),
        )
        where = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    else:  # a root: the trace id comes from `context` through the id generator
        where = otel_context.Context()
    token = _wanted.set(context)
    try:
        span = _tracer.start_span(
            name,
            context=where,
            kind=getattr(trace.SpanKind, kind),
            attributes=attributes or {},
            start_time=start_time,
        )
    finally:
        _wanted.reset(token)
    try:
        yield
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, exc.__class__.__name__))
        raise
    finally:
        span.end()


@contextmanager
def hop(
    name: str, incoming: TraceContext | None, kind: str = "CONSUMER", **attributes: Any
) -> Iterator[None]:
    """Export the span of this process's hop: `tracing.current` (already set by the caller to
    `tracing.continue_from(incoming)`), child of the sender's span `incoming`."""
    mine = tracing.current.get()
    if _tracer is None or mine is None:
        yield
        return
    with _span(name, mine, incoming, attributes, kind):
        yield


@contextmanager
def step(name: str, kind: str = "INTERNAL", **attributes: Any) -> Iterator[None]:
    """A child span of `tracing.current`, current itself while it runs (so what is sent in it
    names it as parent)."""
    parent = tracing.current.get()
    if _tracer is None or parent is None:
        yield
        return
    mine = parent.child()
    with _span(name, mine, parent, attributes, kind), tracing.use(mine):
        yield


def record(name: str, start_time: int, **attributes: Any) -> None:
    """A finished child span of `tracing.current` that began at `start_time` (ns since the
    epoch) and ends now: for work done in a batch, reported per event afterwards."""
    parent = tracing.current.get()
    if _tracer is None or parent is None:
        return
    with _span(name, parent.child(), parent, attributes, start_time=start_time):
        pass
