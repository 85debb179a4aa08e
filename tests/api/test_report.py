"""The model report pages over HTTP: served as self-contained HTML with every section,
linked from the listing, the cards and the docs, protected by the API keys (with `?key=` on
report pages only), optional artifacts shown when recorded and refused when tampered."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import MODEL_NAMES, assert_error, running_app

SECTIONS = ("glance", "quality", "calibration", "training", "errors", "live", "explanation")
KEY = "report-key-0123456789"


def _charts(html: str) -> list[str]:
    return re.findall(r'<svg class="chart[^"]*" role="img" aria-label="([^"]+)"', html)


def _config(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="report-config">(.*?)</script>', html)
    assert match is not None
    loaded: dict[str, Any] = json.loads(match.group(1))
    return loaded


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_model_has_a_self_contained_report_page(client: Any, name: str) -> None:
    response = client.get(f"/v1/models/{name}/report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    for section in SECTIONS:
        assert f'<section id="{section}"' in html, section
    # Nothing from another origin: no external src/href, and the CSP forbids it anyway.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None and f'<script nonce="{nonce.group(1)}">' in html
    labels = _charts(html)
    assert any(label.startswith("Confusion matrix") for label in labels)
    card = client.get(f"/v1/models/{name}").json()["card"]
    if card["task"] == "binary-classification":
        # Trained by this branch's training code: the ROC curve's points are in the card.
        assert card["metrics"]["roc_curve"], card["metrics"]
        assert any(label.startswith("ROC curve") for label in labels)
    # Per-class figures from the confusion matrix, one row per label.
    for label in card["labels"]:
        assert f"<td><code>{label}</code></td>" in html
    config = _config(html)
    assert config["urls"]["metrics"] == f"/v1/models/{name}/versions/1/metrics"
    assert config["labels"] == card["labels"]
    # Recorded by every trainer, so the tiny models have them too: drawn, not "not recorded".
    assert card["calibration"] and card["errors_file"]
    assert any(label.startswith("Reliability diagram") for label in labels)
    assert "Calibration: not recorded for this version" not in html
    assert "Misclassified held-out examples: not recorded" not in html
    assert "held-out rows the model got wrong" in html


def test_the_page_calls_only_the_endpoints_this_server_has(client: Any) -> None:
    html = client.get("/v1/models/mnist-cnn/report").text
    config = _config(html)
    paths = {getattr(route, "path", "") for route in client.app.routes}
    has_monitoring = any(path.endswith("/monitoring") for path in paths)
    has_explain = any(path.endswith(":explain") for path in paths)
    assert (config["urls"]["monitoring"] is not None) == has_monitoring
    assert (config["urls"]["explain"] is not None) == has_explain
    if not (has_monitoring and has_explain):
        assert "not available on this server" in html


def test_listing_cards_and_docs_link_to_the_reports(client: Any) -> None:
    listing = client.get("/v1/models").json()["models"]
    for model in listing:
        assert model["report"] == f"/v1/models/{model['name']}/report"
        assert client.get(model["report"]).status_code == 200
    assert client.get("/v1/models/iris-knn").json()["report"] == (
        "/v1/models/iris-knn/versions/1/report"
    )
    assert client.get("/v1/models/iris-knn/versions/1").json()["report"] == (
        "/v1/models/iris-knn/versions/1/report"
    )
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/models/{name}/report"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/html"}
    assert "[mnist-cnn](v1/models/mnist-cnn/report)" in schema["info"]["description"]


def test_unknown_models_and_versions_are_json_errors(client: Any) -> None:
    assert_error(client.get("/v1/models/nope/report"), 404, "unknown model 'nope'")
    assert_error(client.get("/v1/models/iris-knn/versions/7/report"), 404, "no version 7")
    assert_error(client.get("/v1/models/iris-knn/versions/x/report"), 400, "not a model version")


def test_api_keys_protect_reports_and_a_browser_can_pass_the_key(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, api_keys=[KEY]) as keyed:
        path = "/v1/models/iris-knn/report"
        assert_error(keyed.get(path), 401, "API key")
        assert_error(keyed.get(path, params={"key": "wrong"}), 401, "API key")
        # A browser asking for HTML gets a form that reloads the page with ?key=.
        form = keyed.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
        assert form.status_code == 401 and form.headers["www-authenticate"] == "Bearer"
        assert '<input id="key" name="key" type="password"' in form.text
        assert keyed.get(path, params={"key": KEY}).status_code == 200
        assert keyed.head(path, params={"key": KEY}).status_code == 200
        assert keyed.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        # ?key= is accepted on report pages only, and only for reading them.
        for method, other in (
            ("GET", "/v1/models/iris-knn"),
            ("GET", "/v1/models/iris-knn/metrics"),
            ("POST", "/v1/models/iris-knn:predict"),
            ("POST", path),
        ):
            response = keyed.request(method, other, params={"key": KEY}, json={"instances": []})
            assert response.status_code == 401, (method, other)


def _add_artifact(folder: Path, filename: str, data: Any, field: str | None) -> None:
    (folder / filename).write_text(json.dumps(data))
    card = json.loads((folder / "card.json").read_text())
    card["artifacts"][filename] = hashlib.sha256((folder / filename).read_bytes()).hexdigest()
    if field is not None:
        card[field] = filename
    (folder / "card.json").write_text(json.dumps(card))


def test_recorded_history_and_mistakes_are_drawn(models_copy: Path, data_dir: Path) -> None:
    from training.common import misclassified_examples, write_errors_artifact

    mnist = models_copy / "mnist-cnn" / "1"
    _add_artifact(
        mnist,
        "history.json",
        {"loss": [0.9, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.55], "accuracy": [0.7, 0.85, 0.9]},
        None,  # no card field on this branch: the conventional name, listed and hashed
    )
    with np.load(data_dir / "mnist.npz") as data:
        digits, truth = data["x_test"][:40], data["y_test"][:40].astype(int)
    # Real held-out digits; every prediction shifted by one class, so all are mistakes.
    wrong = np.eye(10)[(truth + 1) % 10] * 0.8 + 0.02
    errors = misclassified_examples(
        [d.astype(int).tolist() for d in digits], truth, wrong, [str(i) for i in range(10)], "test"
    )
    write_errors_artifact(mnist, errors)
    _add_artifact(mnist, "errors.json", errors, "errors_file")
    review = models_copy / "imdb-sentiment" / "1"
    text = {
        "examples": [
            {
                "instance": "<b>dull</b> " * 200,
                "label": "positive",
                "predicted": "negative",
                "confidence": 0.91,
            }
        ],
        "wrong": 1,
    }
    _add_artifact(review, "errors.json", text, "errors_file")
    with running_app(models_copy) as client:
        html = client.get("/v1/models/mnist-cnn/report").text
        assert any(label.startswith("Training curves over 3 epochs") for label in _charts(html))
        images = re.findall(
            r'<img src="data:image/png;base64,[^"]+" width="112" height="112" '
            r'alt="Held-out image, true label (\d), predicted (\d)"',
            html,
        )
        assert len(images) == 12
        assert all(int(p) == (int(t) + 1) % 10 for t, p in images)
        assert "12 of the 40 held-out rows the model got wrong" in html
        html = client.get("/v1/models/imdb-sentiment/report").text
        # An excerpt, escaped: the review's markup is shown, never interpreted.
        assert "&lt;b&gt;dull&lt;/b&gt;" in html and "<b>dull</b>" not in html
        assert 'predicted <span class="wrong">negative</span> (91%)' in html
    # A file changed after the card was written is refused, not shown.
    (mnist / "history.json").write_text(json.dumps({"loss": [5.0]}))
    from app.report.page import _cache

    _cache.clear()
    with running_app(models_copy, expect_ready=False) as client:
        html = client.get("/v1/models/mnist-cnn/versions/1/report").text
        assert "history.json does not match the card&#x27;s sha256; not shown" in html
        assert "Served state: <strong>failed</strong>" in html
