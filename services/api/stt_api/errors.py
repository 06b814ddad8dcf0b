"""Error bodies: always JSON with a `detail` a person can read."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from stt_common.store_epoch import RESTORE_RETRY_AFTER, RESTORING_DETAIL, StoreRestoring

log = logging.getLogger(__name__)
REDIS_RETRY_AFTER: Final = "1"
REDIS_LOG_EVERY: Final = 10.0  # seconds between warnings while Redis fails: no log per request
_last_warning = [0.0]


def _describe(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":  # its loc is a character offset, not a field
        offsets = [p for p in error.get("loc", ()) if isinstance(p, int)]
        reason = (error.get("ctx") or {}).get("error")
        at = f" at character {offsets[0]}" if offsets else ""
        return f"body: invalid JSON{at}" + (f" ({reason})" if reason else "")
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "path", "query", "header")]
    field = ".".join(loc) or "body"
    return f"{field}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    detail = "; ".join(_describe(e) for e in errors) or "invalid request"
    listed = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return JSONResponse(status_code=422, content={"detail": detail, "errors": listed})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    cause = exc.__cause__
    # FastAPI answers 400 when the body is not even decodable (bad UTF-8, nesting deeper than
    # the parser's recursion limit); like any other malformed JSON, that is a 422 here.
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError | RecursionError):
        why = "not UTF-8" if isinstance(cause, UnicodeDecodeError) else "nested too deeply"
        msg = f"JSON could not be read ({why})"
        error = {"loc": ["body"], "msg": msg, "type": "json_invalid"}
        return JSONResponse(status_code=422, content={"detail": f"body: {msg}", "errors": [error]})
    if exc.status_code == 405:
        return _methods(request, exc)
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request, known: str = "") -> list[str]:
    """Every method the API serves at this path, from its OpenAPI document (plus `known`, the
    Allow list of the route Starlette matched first, for routes the document leaves out).
    Starlette's own 405 names only that first route: GET where GET and DELETE share a path."""
    methods = {"OPTIONS", *(m.strip() for m in known.split(",") if m.strip())}
    for pattern, operations in _path_methods(request.app):
        if pattern.match(request.url.path):
            methods |= operations
    return sorted(methods)


def _path_methods(app: Any) -> list[tuple[re.Pattern[str], set[str]]]:
    cached: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "path_methods", None)
    if cached is None:
        cached = []
        for path, operations in app.openapi().get("paths", {}).items():
            methods = {m.upper() for m in operations}
            if "GET" in methods:
                methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
            cached.append((compile_path(path)[0], methods))
        app.state.path_methods = cached
    return cached


def _methods(request: Request, exc: HTTPException) -> Response:
    """OPTIONS answers 204 with every method of the path in Allow; any other method that no
    route serves there answers 405 with the same Allow."""
    known = (exc.headers or {}).get("Allow", "")
    allow = {"Allow": ", ".join(allowed_methods(request, known))}
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=allow)
    return JSONResponse({"detail": exc.detail}, status_code=405, headers=allow)


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis down, or every pooled connection busy past REDIS_POOL_TIMEOUT: 503, not 500.

    One warning line (no traceback) per REDIS_LOG_EVERY seconds, however many requests fail.
    """
    now = time.monotonic()
    if now - _last_warning[0] >= REDIS_LOG_EVERY:
        _last_warning[0] = now
        log.warning("job store unavailable: %s: %s", type(exc).__name__, exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "Job store temporarily unavailable; retry later"},
        headers={"Retry-After": REDIS_RETRY_AFTER},
    )


async def _store_restoring(request: Request, exc: Exception) -> JSONResponse:
    """Redis lost its data and the projector is rebuilding it: a job not found may yet come
    back, so neither 404 nor a new job; the client retries (stt_common.store_epoch)."""
    return JSONResponse(
        status_code=503,
        content={"detail": RESTORING_DETAIL},
        headers={"Retry-After": RESTORE_RETRY_AFTER},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RedisError, _redis_unavailable)
    app.add_exception_handler(StoreRestoring, _store_restoring)
