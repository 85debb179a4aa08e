"""Backfilling newer evaluation artifacts (errors.json) into models trained before them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.schemas.card import ModelCard, TrainingData, verify_artifacts
from tests.conftest import MODEL_NAMES
from training.cli import main
from training.common import ERRORS_FILE


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_trainers_write_the_misclassified_held_out_rows(tiny_models_dir: Path, name: str) -> None:
    folder = tiny_models_dir / name / "1"
    card = ModelCard.read(folder)
    assert card.errors_file == ERRORS_FILE and ERRORS_FILE in card.artifacts
    errors = json.loads((folder / ERRORS_FILE).read_text())
    assert errors["evaluated_on"] == card.classification_metrics().evaluated_on
    assert errors["rows"] == card.classification_metrics().test_size
    matrix = card.classification_metrics().confusion_matrix
    assert errors["wrong"] == card.classification_metrics().test_size - sum(
        matrix[i][i] for i in range(len(matrix))
    )
    assert len(errors["examples"]) == min(errors["wrong"], 12)
    confidences = [e["confidence"] for e in errors["examples"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(e["label"] != e["predicted"] for e in errors["examples"])


def _training_data(card: ModelCard) -> TrainingData:
    assert card.training_data is not None
    return card.training_data


def _strip_errors(folder: Path) -> ModelCard:
    """The artifact as trained before trainers wrote errors.json."""
    card = ModelCard.read(folder)
    old = card.model_copy(
        update={
            "errors_file": None,
            "artifacts": {k: v for k, v in card.artifacts.items() if k != ERRORS_FILE},
        }
    )
    old.write(folder)
    (folder / ERRORS_FILE).unlink()
    return old


def test_backfill_reproduces_the_trainers_errors_and_lists_them(
    models_copy: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = models_copy / "iris-knn" / "1"
    trained = (folder / ERRORS_FILE).read_bytes()
    old = _strip_errors(folder)

    assert main(["backfill", "errors", str(folder), "--data-dir", str(data_dir)]) == 0

    card = ModelCard.read(folder)  # validates
    assert card.errors_file == ERRORS_FILE
    assert verify_artifacts(card, folder) == []
    assert set(card.artifacts) == {*old.artifacts, ERRORS_FILE}
    assert card.examples == old.examples
    assert card.model_dump(exclude={"errors_file", "artifacts"}) == old.model_dump(
        exclude={"errors_file", "artifacts"}
    )
    # Same split, same model, same helper: the file the trainer would have written.
    assert (folder / ERRORS_FILE).read_bytes() == trained
    assert "iris-knn v1:" in capsys.readouterr().out


def test_backfill_refuses_data_other_than_the_training_data(
    models_copy: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = models_copy / "iris-knn" / "1"
    old = _strip_errors(folder)
    other = old.model_copy(
        update={"training_data": _training_data(old).model_copy(update={"sha256": "0" * 64})}
    )
    other.write(folder)
    before = (folder / "card.json").read_bytes()

    assert main(["backfill", "errors", str(folder), "--data-dir", str(data_dir)]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the data iris-knn v1 was trained on" in err
    assert (folder / "card.json").read_bytes() == before
    assert not (folder / ERRORS_FILE).exists()


def test_backfill_refuses_a_model_evaluated_on_another_split(
    models_copy: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trained with --max-rows: its held-out reviews are a slice, not the full split.
    folder = models_copy / "imdb-sentiment" / "1"
    _strip_errors(folder)

    assert main(["backfill", "errors", str(folder), "--data-dir", str(data_dir)]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "retrain instead" in err
    assert not (folder / ERRORS_FILE).exists()


def test_backfill_records_the_roc_curve_of_a_binary_model_trained_before_it(
    models_copy: Path, data_dir: Path
) -> None:
    folder = models_copy / "binary-mlp" / "1"
    trained = ModelCard.read(folder)
    assert trained.classification_metrics().roc_curve
    _strip_errors(folder)
    stripped = ModelCard.read(folder)
    stripped.model_copy(
        update={"metrics": stripped.classification_metrics().model_copy(update={"roc_curve": None})}
    ).write(folder)

    assert main(["backfill", "errors", str(folder), "--data-dir", str(data_dir)]) == 0

    card = ModelCard.read(folder)
    assert verify_artifacts(card, folder) == []
    # The same held-out scores the trainer used: the same points.
    assert card.classification_metrics().roc_curve == trained.classification_metrics().roc_curve
