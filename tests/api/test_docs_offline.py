"""/docs and /redoc render their operations in a real headless browser with the network cut off.

Chromium resolves no host name but 127.0.0.1 and uses no proxy, so a page that needs a CDN
stays blank: the last test shows that FastAPI's stock page, served the same way, renders
nothing, so the first two cannot pass by accident.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from fastapi.openapi.docs import get_swagger_ui_html

from stt_testing import processes

pytestmark = pytest.mark.infra
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
RENDER_TIMEOUT = 120  # seconds for one page (2 shared CPUs)
VIRTUAL_TIME_MS = 20_000  # the page's own clock: scripts, the openapi.json fetch, rendering


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no headless browser: `make system-deps` installs Debian's chromium")
    return found


def rendered_dom(browser: str, url: str, profile: Path) -> str:
    """The DOM of `url` after its scripts ran, with every host but 127.0.0.1 unresolvable."""
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # as root (CI); the page is our own
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT,
        env={**os.environ, "HOME": str(profile)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_swagger_ui_lists_the_operations_offline(
    api: processes.Api, browser: str, tmp_path: Path
) -> None:
    dom = rendered_dom(browser, f"{api.url}/docs", tmp_path)
    for path in ("/api/v1/transcribe", "/api/v1/uploads", "/v1/audio/transcriptions"):
        assert f'data-path="{path}"' in dom, dom[-3000:]
    assert "opblock-summary-method" in dom


def test_redoc_lists_the_operations_offline(
    api: processes.Api, browser: str, tmp_path: Path
) -> None:
    dom = rendered_dom(browser, f"{api.url}/redoc", tmp_path)
    for summary in (
        "Submit a job (idempotent by request_id)",
        "OpenAI-compatible: transcribe a file and wait for the text",
    ):
        assert summary in dom, dom[-3000:]


def test_the_assets_are_served_by_the_api_itself(api: processes.Api) -> None:
    page = httpx.get(f"{api.url}/docs", timeout=10).text
    assert "cdn." not in page and "/static/docs/swagger-ui-bundle.js" in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        resp = httpx.get(f"{api.url}/static/docs/{asset}", timeout=10)
        assert resp.status_code == 200 and len(resp.content) > 50_000, asset


@pytest.fixture
def cdn_page(api: processes.Api, tmp_path: Path) -> Iterator[str]:
    """FastAPI's stock /docs page (assets from a CDN) and the API's document, on loopback."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "openapi.json").write_bytes(httpx.get(f"{api.url}/openapi.json", timeout=10).content)
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="stock")
    (site / "index.html").write_bytes(page.body)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_that_needs_a_cdn_renders_nothing_here(
    cdn_page: str, browser: str, tmp_path: Path
) -> None:
    dom = rendered_dom(browser, cdn_page, tmp_path / "profile")
    assert 'id="swagger-ui"' in dom  # the page loaded ...
    assert "data-path=" not in dom and "opblock" not in dom  # ... its script did not
