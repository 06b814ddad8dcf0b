"""`/docs` (Swagger UI) and `/redoc` without a CDN: their scripts and styles are served from the
copies the `fastapi-offline` package (MIT) ships, Swagger UI (Apache-2.0) and ReDoc (MIT)
bundles, so the pages render on a server with no internet access. FastAPI's own pages load them
from a CDN. `tests/api/test_docs_offline.py` renders both in headless Chromium with the network
cut off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS: Final = Path(fastapi_offline.__file__).parent / "static"
STATIC_PATH: Final = "/static/docs"
DOCS_PATH: Final = "/docs"
REDOC_PATH: Final = "/redoc"


def install(app: FastAPI) -> None:
    """Mount the assets and add both pages (left out of the OpenAPI document)."""
    app.mount(STATIC_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/favicon.png",
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PATH}/favicon.png",
            with_google_fonts=False,
        )
