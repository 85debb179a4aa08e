"""Health, model listing, cards, evaluation metrics and live stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.schemas.card import ModelCard
from tests.conftest import MODEL_NAMES, predict


def test_liveness_and_readiness(client: Any) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {(m["name"], m["state"]) for m in body["models"]} == {(n, "ready") for n in MODEL_NAMES}
    assert all(m["device"] for m in body["models"])


def test_root_redirects_to_the_docs(client: Any) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/docs"


def test_listing(client: Any) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == set(MODEL_NAMES)
    assert models["iris-knn"]["labels"] == ["setosa", "versicolor", "virginica"]
    assert models["mnist-cnn"]["input_kind"] == "image"
    assert models["imdb-sentiment"]["framework"] == "keras"
    assert models["binary-mlp"]["latest_version"] == 1


def test_card_endpoint_returns_the_card_and_how_it_is_served(
    client: Any, tiny_models_dir: Path
) -> None:
    for path in ("/v1/models/mnist-cnn", "/v1/models/mnist-cnn/versions/1"):
        body = client.get(path).json()
        on_disk = ModelCard.read(tiny_models_dir / "mnist-cnn" / "1").model_dump(mode="json")
        assert body["card"] == on_disk
        assert body["serving"]["state"] == "ready"
        assert body["serving"]["device"].startswith("cpu")
        assert body["serving"]["max_batch_size"] == 64


def test_metrics_endpoint_combines_held_out_and_live_numbers(
    client: Any, tiny_models_dir: Path
) -> None:
    card = ModelCard.read(tiny_models_dir / "iris-knn" / "1")
    before = client.get("/v1/models/iris-knn/metrics").json()["serving"]
    flowers = [e.instance for e in card.examples]
    predicted = [p["label"] for p in predict(client, "iris-knn", flowers).json()["predictions"]]
    predict(client, "iris-knn", [[1, 2, 3]])  # a 422
    body = client.get("/v1/models/iris-knn/metrics").json()
    assert body["held_out"] == card.classification_metrics().model_dump(mode="json")
    serving = body["serving"]
    assert serving["requests"] == before["requests"] + 2
    assert serving["errors"] == before["errors"] + 1
    assert serving["errors_by_status"]["422"] >= 1
    for label in set(predicted):
        old = before["predicted_labels"].get(label, {"count": 0})["count"]
        assert serving["predicted_labels"][label]["count"] == old + predicted.count(label)
    latency = serving["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert client.get("/v1/models/iris-knn/versions/1/metrics").json()["model"] == "iris-knn"
