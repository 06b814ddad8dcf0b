"""`python -m bench.api_variants FIXES PORT`: the API as shipped, with proposed fixes applied from
outside, so the benchmark can measure a fix before the service code changes. (Not through
FastAPI's `dependency_overrides`: those rebuild the dependency tree on every request and cost
more than the fix saves.) FIXES is a comma-separated list of:

* async-deps: the route dependencies `_store` and `_publisher` as `async def`. As plain `def`
  FastAPI runs each in the thread pool: two thread hand-offs per request for a dict lookup.

Everything else (settings, middleware, uvicorn with uvloop/httptools) is what `stt api` runs.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import Request

from stt_api.app import create_app
from stt_api.routes import transcribe
from stt_common import logs
from stt_common.settings import Settings


async def _store(request: Request) -> object:
    return request.app.state.job_store


async def _publisher(request: Request) -> object:
    return request.app.state.publisher


def main() -> int:
    fixes, port = set(sys.argv[1].split(",")), int(sys.argv[2])
    logs.setup("api")
    if "async-deps" in fixes:
        # The routes' string annotations (`Depends(_store)`) are evaluated in the module's
        # namespace when the app builds its effective routes, so the new functions are taken.
        transcribe._store = _store  # type: ignore[assignment]
        transcribe._publisher = _publisher  # type: ignore[assignment]
    app = create_app(Settings())
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
