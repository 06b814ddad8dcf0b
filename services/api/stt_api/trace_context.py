"""Each HTTP request runs in a trace: the caller's `traceparent` continued, or a new one.

Pure ASGI, like `body_limit`, so the context is set in the task that runs the route: its log
lines get `trace_id`, and a submit hands the context to Kafka (`SubmitPublisher.publish`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from stt_common import otel, tracing

_HEADER = tracing.HEADER.encode()
# Where a job is accepted (ours, and the OpenAI-compatible ones): their span is named "submit".
SUBMIT_PATHS = frozenset(
    {"/api/v1/transcribe", "/v1/audio/transcriptions", "/v1/audio/translations"}
)


class TraceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k.lower() == _HEADER), None)
        incoming = tracing.parse(header)
        method, path = scope.get("method", ""), scope.get("path", "")
        # The exported span (with OTEL_EXPORTER_OTLP_ENDPOINT) is this request's context itself.
        name = "submit" if method == "POST" and path in SUBMIT_PATHS else f"HTTP {method}"
        with (
            tracing.use(tracing.continue_from(incoming)),
            otel.hop(name, incoming, "SERVER", **{"http.method": method, "url.path": path}),
        ):
            await self.app(scope, receive, send)
