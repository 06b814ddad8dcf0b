"""`X-API-Key` and the rate limit in front of every route under `/api/`: 401, then 429.

Pure ASGI, ahead of routing: a refused request costs no dependency solving, and an accepted
one pays for the check once (FastAPI dependencies cost more than the check itself; see
docs/performance.md). A wrong key is refused before it is counted.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from stt_api.auth import key_matches
from stt_api.rate_limit import RateLimiter

PREFIX = "/api/"
HEADER = b"x-api-key"
SCHEME = "APIKeyHeader"
ROUTE_TEMPLATE = "stt.route_template"


class ApiGuard:
    def __init__(self, app: ASGIApp, prefix: str = PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state  # set by Starlette before any middleware runs
        keys: list[bytes] = state.api_keys
        given = next((v for k, v in scope["headers"] if k == HEADER), None)
        candidate = given.decode("latin-1") if given else None
        if keys and not candidate:
            await _refuse(401, "Missing X-API-Key header", scope, receive, send)
            return
        if keys and not key_matches(candidate or "", keys):
            await _refuse(401, "Invalid API key", scope, receive, send)
            return
        limiter: RateLimiter = state.rate_limiter
        # Without keys (development mode) the client address is the identity.
        client = scope.get("client")
        identity = candidate if keys and candidate else f"addr:{client[0] if client else '-'}"
        wait = limiter.check(identity)
        if wait is not None:
            detail = f"Rate limit exceeded: {limiter.per_minute} requests per minute per API key"
            await _refuse(429, detail, scope, receive, send, {"Retry-After": str(wait)})
            return
        await self.app(scope, receive, send)


async def _refuse(
    code: int,
    detail: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: dict[str, str] | None = None,
) -> None:
    # Refused before routing: name the route template for the metrics (`http_metrics`).
    for pattern, template in _templates(scope["app"]):
        if pattern.match(scope["path"]):
            scope[ROUTE_TEMPLATE] = template
            break
    await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)


def _templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    compiled: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "guard_templates", None)
    if compiled is None:
        paths = app.openapi().get("paths", {})  # built once and cached by FastAPI
        compiled = [(compile_path(p)[0], p) for p in paths if p.startswith(PREFIX)]
        app.state.guard_templates = compiled
    return compiled


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare the key in the OpenAPI document, so /docs offers "Authorize" and sends it."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the keys in STT_API_KEYS / STT_API_KEYS_FILE",
    }
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith(PREFIX):
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]
    return openapi

