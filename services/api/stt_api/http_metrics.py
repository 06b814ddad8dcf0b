"""Counts and times every HTTP request by route template (never by raw path, whose request ids
would make one series per job)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stt_api.guard import ROUTE_TEMPLATE
from stt_common.metrics import HTTP_REQUESTS, HTTP_SECONDS


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get(ROUTE_TEMPLATE)  # routed, or refused before
    return path if isinstance(path, str) else "unmatched"


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route, method = route_of(scope), scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)
