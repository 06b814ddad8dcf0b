"""Error bodies: always JSON with a `detail` a person can read."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "path", "query", "header")]
    field = ".".join(loc) or "body"
    return f"{field}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    detail = "; ".join(_describe(e) for e in errors) or "invalid request"
    listed = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return JSONResponse(status_code=422, content={"detail": detail, "errors": listed})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
