"""The model card schema shared by training and serving."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.schemas.card import ModelCard, sha256_file, verify_artifacts

VALID: dict[str, Any] = {
    "name": "toy",
    "version": 1,
    "description": "a toy",
    "framework": "sklearn",
    "task": "binary-classification",
    "input": {"kind": "tabular", "features": [{"name": "x", "unit": "cm"}]},
    "labels": ["no", "yes"],
    "model_file": "model.joblib",
    "artifacts": {"model.joblib": "0" * 64},
    "training_data": {
        "source": "made up",
        "sha256": "1" * 64,
        "train_size": 8,
        "validation_size": 0,
        "test_size": 4,
    },
    "hyperparameters": {},
    "metrics": {
        "evaluated_on": "test",
        "test_size": 4,
        "accuracy": 0.75,
        "precision_macro": 0.75,
        "recall_macro": 0.75,
        "f1_macro": 0.75,
        "roc_auc": 0.8,
        "confusion_matrix": [[2, 0], [1, 1]],
    },
    "library_versions": {"python": "3.11"},
    "seed": 42,
    "created_at": "2026-11-22T00:00:00Z",
    "training_seconds": 1.0,
    "examples": [{"instance": [1.0], "label": "yes"}],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    card = copy.deepcopy(VALID)
    target = card
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    return card


def test_a_valid_card_parses() -> None:
    card = ModelCard.model_validate(VALID)
    assert card.input.kind == "tabular" and card.labels == ["no", "yes"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("name", "../etc", "should match pattern"),
        ("model_file", "../../model.joblib", "should match pattern"),
        ("model_file", "other.joblib", "not listed in artifacts"),
        ("artifacts", {"card.json": "0" * 64, "model.joblib": "0" * 64}, "its own hash"),
        ("artifacts", {"model.joblib": "not-a-hash"}, "should match pattern"),
        ("labels", ["a", "a"], "unique"),
        ("labels", ["a", "b", "c"], "exactly 2 labels"),
        ("metrics.confusion_matrix", [[2, 0], [1, 0]], "does not add up"),
        ("metrics.confusion_matrix", [[4]], "2x2"),
        ("metrics.accuracy", 1.5, "less than or equal"),
        ("examples", [], "at least 1"),
        ("examples", [{"instance": [1.0], "label": "maybe"}], "not in labels"),
        (
            "input",
            {"kind": "text", "vocabulary_file": "vocab.txt", "sequence_length": 8, "ngram_max": 2},
            "vocabulary_file",
        ),
        ("framework", "Py Torch", "should match pattern"),
        ("surprise", 1, "Extra inputs"),
    ],
)
def test_invalid_cards_are_refused_with_a_reason(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelCard.model_validate(_with(path, value))


def test_the_schema_does_not_list_the_frameworks() -> None:
    """The runtimes table is the one list (`app.runtimes.RUNTIMES`): a card naming another
    framework is a valid card, refused where it would load (`load_model`)."""
    assert ModelCard.model_validate(_with("framework", "pytorch")).framework == "pytorch"


def test_verify_artifacts_reports_missing_changed_and_escaping_files(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"weights")
    outside = tmp_path.parent / "outside.bin"
    outside.write_bytes(b"x")
    (tmp_path / "link.bin").symlink_to(outside)
    card = ModelCard.model_validate(
        _with(
            "artifacts",
            {
                "model.joblib": sha256_file(tmp_path / "model.joblib"),
                "gone.bin": "0" * 64,
                "link.bin": sha256_file(outside),
            },
        )
    )
    assert verify_artifacts(card, tmp_path) == [
        "gone.bin: missing",
        "link.bin: refusing a file that links outside the model folder",
    ]
    (tmp_path / "model.joblib").write_bytes(b"weightz")
    problems = verify_artifacts(card, tmp_path)
    assert any(p.startswith("model.joblib: sha256") for p in problems)


def test_card_round_trips_through_json(tmp_path: Path) -> None:
    card = ModelCard.model_validate(VALID)
    card.write(tmp_path)
    assert ModelCard.read(tmp_path) == card
