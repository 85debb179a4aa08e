"""The model report pages in a real headless Chromium with every request not to the test
server blocked: each model's page renders every chart, its script runs without a console
error, sends the API key on its fetches, refreshes the live figures without a reload, and the
layout fits a phone's width. Screenshots go to test-artifacts/report/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from fastapi import Request
from starlette.responses import JSONResponse

from app.preprocessing.text import tokenize
from tests.conftest import COMMITTED_MODELS, MODEL_NAMES, ROOT
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_browser import CHROMIUM_FLAGS, _chromium

pytestmark = pytest.mark.browser
SHOTS = ROOT / "test-artifacts" / "report"
KEY = "browser-report-key-42"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def report_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    models = tmp_path_factory.mktemp("report") / "models"
    shutil.copytree(COMMITTED_MODELS, models, ignore=shutil.ignore_patterns(".*"))
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


# The words of every tile value that the layout split over two or more lines.
BROKEN_WORDS_IN_TILES = """() => {
  const broken = [];
  for (const value of document.querySelectorAll(".tile .value")) {
    const node = value.firstChild;
    if (!node || node.nodeType !== Node.TEXT_NODE) continue;
    const text = node.textContent;
    const word = /\\S+/g;
    let match;
    while ((match = word.exec(text)) !== null) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set(Array.from(range.getClientRects(), r => Math.round(r.top)));
      if (tops.size > 1) broken.push(match[0]);
    }
  }
  return broken;
}"""


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
                page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
                page.route("**/*", only_the_server)
                page.on(  # type: ignore[call-overload]
                    "console",
                    lambda m, n=name: (
                        problems.append(f"{n}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda e, n=name: problems.append(f"{n}: {e}"))  # type: ignore[call-overload]
                response = page.goto(f"{report_server.url}/v1/models/{name}/report?key={KEY}")
                assert response is not None and response.status == 200, name
                # The script ran and its fetch, with the key as a bearer token, came back.
                page.wait_for_selector("#live-tiles .tile", timeout=30_000)
                page.wait_for_selector("#live-labels svg.chart", timeout=30_000)
                charts = page.locator("svg.chart")
                expected = 2  # confusion matrix, live labels
                # The committed artifacts' real mistakes (errors.json, listed in each card).
                assert "held-out rows the model got wrong" in page.locator("#errors").inner_text()
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
                # Tiles break lines between words only ("multiclass classification" is two
                # lines at most, never "multiclas / s"): each word's box is one line.
                broken = page.evaluate(BROKEN_WORDS_IN_TILES)
                assert broken == [], (name, device, broken)
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
        # The page makes requests of its own (its sample explanation), so the figure to
        # reach is the server's count after our prediction, not a fixed increment.
        served = httpx.get(
            f"{report_server.url}/v1/models/iris-knn/metrics", headers=AUTH, timeout=30
        ).json()["serving"]["requests"]
        assert served >= before + 1
        deadline = time.monotonic() + 30
        while _requests_tile(page) < served and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert _requests_tile(page) >= served
        assert page.evaluate("window.notReloaded") is True
        browser.close()
    assert not problems, problems
    assert not blocked, blocked


MONITORING = {
    "model": "mnist-cnn",
    "versions": [
        {
            "version": 1,
            "rows_predicted": 900,
            "rows_with_feedback": 400,
            "held_out_accuracy": 0.9894,
            "accuracy": {
                "all_time": {
                    "rows": 400,
                    "correct": 372,
                    "accuracy": 0.93,
                    "interval_95": [0.9, 0.95],
                    "below_held_out": True,
                },
                "recent": {
                    "rows": 200,
                    "correct": 180,
                    "accuracy": 0.9,
                    "interval_95": [0.85, 0.935],
                    "below_held_out": True,
                    "window_rows": 200,
                },
            },
            "confusion_matrix": {"labels": [], "matrix": []},
            "drift": {
                "window_rows": 500,
                "rows": 500,
                "profile": True,
                "flagged": True,
                "statistics": [
                    {
                        "statistic": "mean_intensity",
                        "kind": "continuous",
                        "test": "ks",
                        "score": 0.31,
                        "p_value": 1e-9,
                        "window_rows": 500,
                        "flag": True,
                    },
                    {
                        "statistic": "predicted_label",
                        "kind": "categorical",
                        "test": "chi2",
                        "score": 0.02,
                        "p_value": 0.4,
                        "window_rows": 500,
                        "flag": False,
                    },
                ],
            },
        }
    ],
}


@pytest.fixture(scope="module")
def app_with_optional_routes() -> Iterator[str]:
    """The service in-process, plus stand-ins for the monitoring and explanation routes in the
    shapes those modules answer: the page must find them and draw what they return. (Request
    is imported at module level: FastAPI resolves the handlers' string annotations there.)"""
    import threading

    import uvicorn

    from app.main import create_app
    from app.report.content import digit_png
    from tests.conftest import make_settings
    from tests.e2e.conftest import free_port

    app = create_app(make_settings(COMMITTED_MODELS))

    async def monitoring(request: Request, name: str, version: str) -> JSONResponse:
        return JSONResponse({**MONITORING, "model": name})

    async def explain(request: Request, name: str, version: str) -> JSONResponse:
        instance = (await request.json())["instances"][0]
        if name == "mnist-cnn":
            item: dict[str, Any] = {
                "label": "7",
                "explained_label": "7",
                "overlay_png": digit_png(instance, scale=8),
            }
        else:
            item = {
                "label": "positive",
                "explained_label": "positive",
                "tokens": [
                    {"token": "star", "attribution": 0.2, "unknown": False},
                    {"token": "the star", "attribution": 0.1, "unknown": False},
                    {
                        "token": "<unknown>",
                        "attribution": -0.05,
                        "unknown": True,
                        "stands_for": ["mores"],
                    },
                ],
                "unknown_words": ["mores"],
                "words": [
                    {"word": "the", "attribution": 0.05, "unknown": False},
                    {"word": "star", "attribution": 0.25, "unknown": False},
                    {"word": "mores", "attribution": -0.05, "unknown": True},
                ],
            }
        item["method"] = {"name": "stand-in"}
        return JSONResponse({"model": name, "version": 1, "explanations": [item]})

    prefix = "/v1/models/{name:model}/versions/{version:version}"
    app.add_api_route(prefix + "/monitoring", monitoring, methods=["GET"])
    # Ahead of the real route: a fresh server has no feedback to draw, the stand-in has.
    app.router.routes.insert(0, app.router.routes.pop())
    app.add_api_route(prefix + ":explain", explain, methods=["POST"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def test_monitoring_and_explanations_are_drawn_where_the_server_has_them(
    app_with_optional_routes: str,
) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{app_with_optional_routes}/v1/models/mnist-cnn/report")
        try:
            page.wait_for_selector("#live-monitoring table", timeout=30_000)
        except Exception as exc:
            raise AssertionError((problems, page.inner_html("#live"))) from exc
        monitoring = page.locator("#live-monitoring").inner_text()
        assert "90.0%" in monitoring and "98.9%" in monitoring  # live against held-out
        assert "below the held-out figure" in monitoring and "flagged" in monitoring
        assert page.locator("#live-monitoring .flag.on").count() == 2  # overall + one statistic
        overlay = page.wait_for_selector("#explanation-result img", timeout=30_000)
        assert overlay is not None
        assert overlay.get_attribute("alt") and (overlay.get_attribute("src") or "").startswith(
            "data:image/png;base64,"
        )
        page.screenshot(path=str(SHOTS / "mnist-cnn-with-monitoring.png"), full_page=True)
        page.goto(f"{app_with_optional_routes}/v1/models/imdb-sentiment/report")
        page.wait_for_selector("#explanation-result .tokens span", timeout=30_000)
        # The strip reads as the review, word by word (pairs folded into their words); the
        # n-grams as the model looked them up are in a table of their own.
        # (Whichever answers, the stand-in or the real explainer, the page draws the words.)
        words = page.locator("#explanation-result .tokens span").all_inner_texts()
        assert words and all(len(word.split()) == 1 for word in words), words
        sample = page.locator("section#explanation blockquote").first.inner_text()
        stand_in = ["the", "star", "mores"]
        expected = stand_in if words == stand_in else tokenize(sample.removesuffix("..."))
        shown = min(len(words), len(expected)) - 1  # the excerpt may end mid-word
        assert shown > 1 and words[:shown] == expected[:shown], (words, expected)
        unknown = page.locator("#explanation-result .tokens span.unknown")
        assert unknown.count() >= 1
        assert (unknown.first.get_attribute("title") or "").startswith("not in the vocabulary")
        cells = page.locator("#explanation-result details tbody td.num").all_text_contents()
        strengths = [abs(float(cell)) for cell in cells]
        assert strengths and strengths == sorted(strengths, reverse=True)  # strongest first
        browser.close()
    assert not problems, problems
