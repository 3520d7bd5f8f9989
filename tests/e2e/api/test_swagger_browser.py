"""The Swagger page in a real browser: it renders every operation and talks to this server only.

Headless Chromium (Debian's package; `.ci/run` installs it) driven by Playwright
opens ``/schema/swagger`` on a real API process. Every request the page makes is
recorded: none may leave the API's own origin (no CDN for scripts, styles, fonts
or the icon), none may fail, and the page must show one block per operation of
the OpenAPI document.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from benchmarks.api import REAL_APP, prepare_home, serve, server_environment

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "home"
    env = server_environment(home)
    prepare_home(home, env, [])
    with serve(REAL_APP, env, cwd=tmp_path, log=tmp_path / "uvicorn.log") as api:
        yield api.base_url


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`.ci/run` installs it)")
def test_swagger_page_renders_every_operation_from_this_server_only(server: str) -> None:
    from playwright.sync_api import sync_playwright

    document = httpx.get(f"{server}/schema/openapi.json", timeout=10).json()
    operations = sum(
        1
        for item in document["paths"].values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    origin = urlsplit(server).netloc
    requested: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on(
                "response",
                lambda response: response.status >= 400 and failed.append(response.url),
            )
            response = page.goto(f"{server}/schema/swagger", wait_until="networkidle")
            assert response is not None and response.status == 200
            page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
            rendered = page.locator(".swagger-ui .opblock").count()
            title = page.locator(".swagger-ui .info .title").inner_text()
        finally:
            browser.close()
    assert rendered == operations
    assert title.startswith("Headwater API")
    foreign = [url for url in requested if urlsplit(url).netloc not in (origin, "")]
    assert foreign == [], f"the page reached outside the API: {foreign}"
    assert failed == []
    assert any(url.endswith("/schema/assets/swagger-ui-bundle.js") for url in requested)
