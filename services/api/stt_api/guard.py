"""`X-API-Key` and the rate limit in front of every route under `/api/`: 401, then 429.

The OpenAI-compatible routes under `/v1/` take the same keys as `Authorization: Bearer <key>`
(or `X-API-Key`), and are refused with OpenAI's error body.

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

from stt_api.auth import DEVELOPMENT_CALLER, SCOPE_KEY, match
from stt_api.deps import Wiring
from stt_api.openai_format import ErrorType, error_body

PREFIX = "/api/"
OPENAI_PREFIX = "/v1/"
HEADER = b"x-api-key"
AUTHORIZATION = b"authorization"
SCHEME = "APIKeyHeader"
BEARER_SCHEME = "HTTPBearer"
ROUTE_TEMPLATE = "stt.route_template"


class ApiGuard:
    def __init__(self, app: ASGIApp, prefix: str = PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        openai = scope["type"] == "http" and scope["path"].startswith(OPENAI_PREFIX)
        if scope["type"] != "http" or not (openai or scope["path"].startswith(self.prefix)):
            await self.app(scope, receive, send)
            return
        wiring: Wiring = scope["app"].state.wiring  # scope["app"]: set by Starlette before
        keys = wiring.api_keys  # any middleware runs; the wiring by the lifespan
        candidate = _given_key(scope, bearer=openai)
        if keys and not candidate:
            missing = "Missing API key: send Authorization: Bearer <key>" if openai else None
            await _refuse(401, missing or "Missing X-API-Key header", scope, receive, send)
            return
        caller = match(candidate or "", keys) if keys else DEVELOPMENT_CALLER
        if caller is None:
            await _refuse(401, "Invalid API key", scope, receive, send)
            return
        scope[SCOPE_KEY] = caller
        limiter = wiring.rate_limiter
        # Without keys (development mode) the client address is the identity.
        client = scope.get("client")
        identity = candidate if keys and candidate else f"addr:{client[0] if client else '-'}"
        wait = limiter.check(identity)
        if wait is not None:
            detail = f"Rate limit exceeded: {limiter.per_minute} requests per minute per API key"
            await _refuse(429, detail, scope, receive, send, {"Retry-After": str(wait)})
            return
        await self.app(scope, receive, send)


def _given_key(scope: Scope, bearer: bool) -> str | None:
    """X-API-Key, else (with `bearer`) the token of `Authorization: Bearer <token>`."""
    headers = scope["headers"]
    given = next((v for k, v in headers if k == HEADER), None)
    if not given and bearer:
        auth = next((v for k, v in headers if k == AUTHORIZATION), b"")
        scheme, _, token = auth.partition(b" ")
        given = token.strip() if scheme.lower() == b"bearer" else None
    return given.decode("latin-1") if given else None


_OPENAI_ERRORS = {
    401: (ErrorType.INVALID_REQUEST, "invalid_api_key"),
    429: (ErrorType.RATE_LIMIT, "rate_limit_exceeded"),
}


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
    if scope["path"].startswith(OPENAI_PREFIX):
        kind, error_code = _OPENAI_ERRORS[code]
        body = error_body(detail, kind, code=error_code)
    else:
        body = {"detail": detail}
    await JSONResponse(body, status_code=code, headers=headers)(scope, receive, send)


def _templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    compiled: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "guard_templates", None)
    if compiled is None:
        paths = app.openapi().get("paths", {})  # built once and cached by FastAPI
        guarded = (PREFIX, OPENAI_PREFIX)
        compiled = [(compile_path(p)[0], p) for p in paths if p.startswith(guarded)]
        app.state.guard_templates = compiled
    return compiled


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare the key in the OpenAPI document, so /docs offers "Authorize" and sends it."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the keys in STT_API_KEYS / STT_API_KEYS_FILE (the key part of a "
        "tenant:key entry): it names the tenant whose jobs the request sees",
    }
    components["securitySchemes"][BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The same keys, as OpenAI clients send them (/v1/ routes only)",
    }
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith(PREFIX):
            for operation in operations.values():
                operation["security"] = [{SCHEME: []}]
        elif path.startswith(OPENAI_PREFIX):
            for operation in operations.values():
                operation["security"] = [{BEARER_SCHEME: []}, {SCHEME: []}]
    return openapi
