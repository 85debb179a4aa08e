"""Broken artifacts: that model is reported failed with the reason, the others serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.schemas.card import ModelCard, sha256_file
from tests.conftest import predict, running_app


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _states(client: Any) -> dict[str, dict[str, Any]]:
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    return {m["name"]: m for m in response.json()["models"]}


def test_each_kind_of_damage_fails_only_its_model(models_copy: Path) -> None:
    mnist = models_copy / "mnist-cnn" / "1" / "model.keras"
    mnist.write_bytes(mnist.read_bytes()[: mnist.stat().st_size // 2])  # truncated
    _flip_a_byte(models_copy / "iris-knn" / "1" / "model.joblib")
    (models_copy / "imdb-sentiment" / "1" / "card.json").unlink()
    with running_app(models_copy, expect_ready=False) as client:
        states = _states(client)
        assert states["mnist-cnn"]["state"] == "failed"
        assert "model.keras: sha256" in states["mnist-cnn"]["reason"]
        assert states["iris-knn"]["state"] == "failed"
        assert "model.joblib: sha256" in states["iris-knn"]["reason"]
        assert states["imdb-sentiment"]["state"] == "failed"
        assert "card.json is missing" in states["imdb-sentiment"]["reason"]
        assert states["binary-mlp"]["state"] == "ready"
        # The healthy model serves; the broken ones answer 503 with the reason.
        card = ModelCard.read(models_copy / "binary-mlp" / "1")
        assert predict(client, "binary-mlp", [card.examples[0].instance]).status_code == 200
        response = predict(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]])
        assert response.status_code == 503
        assert "failed to load" in response.json()["error"] and "sha256" in response.json()["error"]
        assert response.headers["retry-after"]
        assert client.get("/v1/models/imdb-sentiment").status_code == 503


def _rewrite_card(folder: Path, change: Any) -> None:
    card = json.loads((folder / "card.json").read_text())
    change(card)
    (folder / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("garbage card", "card.json is invalid"),
        (
            "card of another model",
            "the card says iris-knn version 1 but the folder is binary-mlp/1",
        ),
        ("artifact that loads badly", "loading failed"),
        ("different predictions than at training", "does not reproduce the probabilities"),
        ("empty model folder", "no version folder"),
    ],
)
def test_more_damage(models_copy: Path, damage: str, reason: str) -> None:
    folder = models_copy / "binary-mlp" / "1"
    if damage == "garbage card":
        (folder / "card.json").write_text("{not json")
    elif damage == "card of another model":
        (folder / "card.json").write_bytes((models_copy / "iris-knn/1/card.json").read_bytes())
    elif damage == "artifact that loads badly":
        # Consistent hash, unusable file: caught at load time, not by the hash check.
        (folder / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
        _rewrite_card(
            folder,
            lambda c: c["artifacts"].update({"model.keras": sha256_file(folder / "model.keras")}),
        )
    elif damage == "different predictions than at training":
        _rewrite_card(
            folder,
            lambda c: c["examples"][0].update(
                {"probabilities": [0.0, 1.0]}
                if c["examples"][0]["probabilities"][0] > 0.5
                else {"probabilities": [1.0, 0.0]}
            ),
        )
    else:
        (models_copy / "new-model").mkdir()
    failed = "new-model" if damage == "empty model folder" else "binary-mlp"
    with running_app(models_copy, expect_ready=False) as client:
        states = _states(client)
        assert states[failed]["state"] == "failed"
        assert reason in states[failed]["reason"], states[failed]
        assert [n for n, s in states.items() if s["state"] != "ready"] == [failed]
