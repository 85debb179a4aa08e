"""Swagger UI in a real headless Chromium, with every host but 127.0.0.1 unreachable."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _chromium() -> str:
    path = (
        os.environ.get("SYNERGY_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        if os.environ.get("SYNERGY_SKIP_BROWSER") == "1":
            pytest.skip("SYNERGY_SKIP_BROWSER=1 and no chromium")
        pytest.fail(
            "chromium not found: run scripts/ensure-test-tools.sh chromium (Debian "
            "package chromium), or set SYNERGY_CHROMIUM to its path"
        )
    return path


def test_try_it_out_on_the_mnist_example_works_offline(server: Server) -> None:
    from playwright.sync_api import Route, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    blocked: list[str] = []

    def only_localhost(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", only_localhost)
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{server.url}/docs")

        # Every operation rendered (the page is OpenAPI 3.1: Swagger UI 4 would fail here).
        page.wait_for_selector(".opblock", timeout=30_000)
        assert "Unable to render" not in page.content()
        summaries = page.locator(".opblock-summary-path").all_inner_texts()
        for path in (
            "/v1/models/mnist-cnn:predict",
            "/v1/models/iris-knn:predict",
            "/health/ready",
            "/v1/models/{name}",
        ):
            assert any(path in text.replace("\u200b", "") for text in summaries), path

        operation = page.locator("#operations-predict-predict_mnist_cnn")
        operation.locator(".opblock-summary").click()
        operation.locator("button.try-out__btn").click()
        operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=30_000)
        assert status.inner_text().strip().startswith("200"), status.inner_text()
        body = operation.locator(".live-responses-table tbody .microlight").first.inner_text()
        assert '"label": "7"' in body, body  # the example is a real test-set seven
        operation.screenshot(path=str(ARTIFACTS / "swagger-mnist-try-it-out.png"))
        page.screenshot(path=str(ARTIFACTS / "swagger-docs.png"), full_page=False)
        browser.close()
    assert not [e for e in console_errors if "Failed to load resource" in e and "127.0.0.1" in e]
    assert all(urlparse(url).hostname not in ("127.0.0.1", "localhost") for url in blocked)
