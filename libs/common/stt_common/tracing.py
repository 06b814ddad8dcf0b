"""W3C trace context (`traceparent`) from the HTTP request through Kafka to every job log line.

Dependency-free on purpose: the API takes the caller's `traceparent` header (or starts a trace),
the submit event carries it as a Kafka header, the transcriber puts a child of it on its retry,
progress and result events, and the projector reads it. While a job is handled, `current` holds
its context and `stt_common.logs.JsonFormatter` adds `trace_id` to each line. Spans are exported
only with OTEL_EXPORTER_OTLP_ENDPOINT set (`stt_common.otel`), with these very ids.

Format (https://www.w3.org/TR/trace-context/): `00-<32 hex trace id>-<16 hex span id>-<2 hex
flags>`, lower case, neither id all zeros.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

HEADER = "traceparent"
SAMPLED = 0x01
_VERSION_00 = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# A later version may append fields; its first four keep their meaning (spec, "versioning").
_LATER = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True)
class TraceContext:
    trace_id: str  # 32 lower-case hex digits (16 bytes)
    span_id: str  # 16 lower-case hex digits (8 bytes): the span that sent the message
    flags: int = SAMPLED

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> TraceContext:
        """The same trace, a new span: what a hop puts on the messages it sends on."""
        return TraceContext(self.trace_id, _span_id(), self.flags)

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(HEADER, self.header().encode())]


def _span_id() -> str:
    while True:  # all zeros is invalid; a 1 in 2**64 draw, but cheap to rule out
        span = secrets.token_hex(8)
        if span != _ZERO_SPAN:
            return span


def new_trace() -> TraceContext:
    while True:
        trace = secrets.token_hex(16)
        if trace != _ZERO_TRACE:
            return TraceContext(trace, _span_id())


def parse(value: str | bytes | None) -> TraceContext | None:
    """The context in a `traceparent` value, or None when it is absent or malformed."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip()
    found = _VERSION_00.match(value)
    if found is not None:
        trace, span, flags = found.groups()
    else:
        later = _LATER.match(value)
        if later is None or later.group(1) in ("00", "ff"):  # 00 must be exact; ff is invalid
            return None
        trace, span, flags = later.group(2, 3, 4)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return TraceContext(trace, span, int(flags, 16))


def continue_from(incoming: TraceContext | None) -> TraceContext:
    """This hop's context: a child of the incoming one, or a new trace when there is none."""
    return incoming.child() if incoming is not None else new_trace()


def from_kafka(headers: Iterable[tuple[str, bytes]] | None) -> TraceContext | None:
    """The `traceparent` of a Kafka record's headers (the last one, if repeated)."""
    found = None
    for name, value in headers or ():
        if name.lower() == HEADER:
            found = parse(value)
    return found


# The job being handled by this task (asyncio tasks and to_thread copy it), read by the logs.
current: ContextVar[TraceContext | None] = ContextVar("stt_trace", default=None)


@contextmanager
def use(context: TraceContext | None) -> Iterator[TraceContext | None]:
    token = current.set(context)
    try:
        yield context
    finally:
        current.reset(token)


def current_trace_id() -> str | None:
    context = current.get()
    return context.trace_id if context is not None else None


def current_kafka_headers() -> list[tuple[str, bytes]] | None:
    """Headers for a message sent while handling a job: its `traceparent`, if there is one."""
    context = current.get()
    return context.kafka_headers() if context is not None else None
