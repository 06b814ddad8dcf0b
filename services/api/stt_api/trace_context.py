"""Each HTTP request runs in a trace: the caller's `traceparent` continued, or a new one.

Pure ASGI, like `body_limit`, so the context is set in the task that runs the route: its log
lines get `trace_id`, and a submit hands the context to Kafka (`SubmitPublisher.publish`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from stt_common import otel, tracing

_HEADER = tracing.HEADER.encode()
SUBMIT_PATH = "/api/v1/transcribe"


class TraceContext:
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
        name = "submit" if (method, path) == ("POST", SUBMIT_PATH) else f"HTTP {method}"
        with (
            tracing.use(tracing.continue_from(incoming)),
            otel.hop(name, incoming, "SERVER", **{"http.method": method, "url.path": path}),
        ):
            await self.app(scope, receive, send)
