"""The model report pages in a real headless Chromium with every request not to the test
server blocked: each model's page renders every chart, its script runs without a console
error, sends the API key on its fetches, refreshes the live figures without a reload, and the
layout fits a phone's width. Screenshots go to test-artifacts/report/."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from tests.conftest import COMMITTED_MODELS, MODEL_NAMES, ROOT
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_browser import CHROMIUM_FLAGS, _chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
SHOTS = ROOT / "test-artifacts" / "report"
KEY = "browser-report-key-42"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _record_mistakes(folder: Path, data_dir: Path) -> None:
    """errors.json for the committed MNIST model, as training records it: the real model's
    real mistakes on the real held-out digits, listed and hashed in the card."""
    import keras

    from app.preprocessing.image import images_to_model_input
    from training.common import misclassified_examples, write_errors_artifact

    with np.load(data_dir / "mnist.npz") as data:
        digits, truth = data["x_test"], data["y_test"].astype(np.int64)
    model = keras.saving.load_model(folder / "model.keras")
    probabilities = model.predict(images_to_model_input(digits), batch_size=500, verbose=0)
    labels = [str(i) for i in range(10)]
    instances = [d.astype(int).tolist() for d in digits]
    name = write_errors_artifact(
        folder, misclassified_examples(instances, truth, probabilities, labels, "test")
    )
    card = json.loads((folder / "card.json").read_text())
    card["artifacts"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    card["errors_file"] = name
    (folder / "card.json").write_text(json.dumps(card, indent=2))


@pytest.fixture(scope="module")
def report_server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Server]:
    models = tmp_path_factory.mktemp("report") / "models"
    shutil.copytree(COMMITTED_MODELS, models, ignore=shutil.ignore_patterns(".*"))
    _record_mistakes(models / "mnist-cnn" / "1", data_dir)
    running = start_server(models.parent / "server.log", models, SYNERGY_API_KEYS=KEY)
    # Some traffic, so the live label chart has something to draw.
    for name in MODEL_NAMES:
        card = httpx.get(f"{running.url}/v1/models/{name}", headers=AUTH, timeout=30).json()
        instances = [e["instance"] for e in card["card"]["examples"]]
        response = httpx.post(
            f"{running.url}/v1/models/{name}:predict",
            json={"instances": instances},
            headers=AUTH,
            timeout=60,
        )
        assert response.status_code == 200, response.text
    yield running
    running.stop()


def _requests_tile(page: Any) -> int:
    return int(page.locator("#live-tiles .tile").first.locator(".value").inner_text())


def test_every_report_page_renders_offline_with_its_charts(report_server: Server) -> None:
    from playwright.sync_api import Route, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []
    problems: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        for name in MODEL_NAMES:
            for device, viewport in (
                ("laptop", {"width": 1366, "height": 900}),
                ("phone", {"width": 390, "height": 844}),
            ):
                page = browser.new_page(viewport=viewport)
                page.route("**/*", only_the_server)
                page.on(
                    "console",
                    lambda m, n=name: (
                        problems.append(f"{n}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda e, n=name: problems.append(f"{n}: {e}"))
                response = page.goto(f"{report_server.url}/v1/models/{name}/report?key={KEY}")
                assert response is not None and response.status == 200, name
                # The script ran and its fetch, with the key as a bearer token, came back.
                page.wait_for_selector("#live-tiles .tile", timeout=30_000)
                page.wait_for_selector("#live-labels svg.chart", timeout=30_000)
                charts = page.locator("svg.chart")
                expected = 2  # confusion matrix, live labels
                if name == "mnist-cnn":
                    assert page.locator("#errors img").count() == 12
                assert charts.count() >= expected, (name, charts.count())
                for i in range(charts.count()):
                    chart = charts.nth(i)
                    assert chart.get_attribute("aria-label"), (name, i)
                    box = chart.bounding_box()
                    assert box is not None and box["width"] > 150 and box["height"] > 40, (name, i)
                for section in ("glance", "quality", "calibration", "training", "errors", "live"):
                    assert page.locator(f"section#{section}").is_visible(), (name, section)
                # Nothing wider than the screen: no sideways scrolling on a phone.
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (name, device, overflow)
                page.screenshot(path=str(SHOTS / f"{name}-{device}.png"), full_page=True)
                page.close()

        # The live section refreshes in place: a prediction made after the page loaded shows
        # up without a reload.
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.route("**/*", only_the_server)
        page.goto(f"{report_server.url}/v1/models/iris-knn/report?key={KEY}")
        page.wait_for_selector("#live-tiles .tile", timeout=30_000)
        page.evaluate("window.notReloaded = true")
        before = _requests_tile(page)
        httpx.post(
            f"{report_server.url}/v1/models/iris-knn:predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
            headers=AUTH,
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while _requests_tile(page) == before and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert _requests_tile(page) == before + 1
        assert page.evaluate("window.notReloaded") is True
        browser.close()
    assert not problems, problems
    assert not blocked, blocked
