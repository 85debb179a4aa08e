"""The task plug-ins encode model outputs per protocol; live regression figures; table drift
statistics."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.monitoring.profile import MISSING_CATEGORY, OTHER_CATEGORY, table_statistics
from app.monitoring.quality import regression_figures
from app.schemas.card import CardExample, Feature, ModelCard, TableInput, TabularInput
from app.tasks import output_names, task_of
from training.importing.cli import main


def _card(task: str, labels: list[str], **example: Any) -> ModelCard:
    return ModelCard(
        name="m",
        version=1,
        description="d",
        framework="sklearn",
        task=task,
        input=TabularInput(features=[Feature(name="a")]),
        labels=labels,
        model_file="model.skops",
        artifacts={"model.skops": "0" * 64},
        hyperparameters={},
        library_versions={},
        created_at=datetime.now(UTC),
        examples=[CardExample(instance=[1.0], **example)],
    )


def test_a_single_target_regressor_answers_value_and_predict() -> None:
    card = _card("regression", ["price"], prediction=[3.0])
    task = task_of(card)
    values = np.array([[1.5], [2.5]])
    assert task.encode_v1(card, values) == [{"value": 1.5}, {"value": 2.5}]
    assert output_names(card) == ["predict", "warnings"]
    assert task.tensor(card, "predict", values).shape == (2,)


def test_a_multi_output_regressor_has_one_output_per_target() -> None:
    card = _card("regression", ["a", "b"], prediction=[1.0, 2.0])
    task = task_of(card)
    values = np.array([[1.0, 2.0]])
    assert task.encode_v1(card, values) == [{"values": {"a": 1.0, "b": 2.0}}]
    assert output_names(card) == ["predict", "a", "b", "warnings"]
    assert task.tensor(card, "b", values).tolist() == [2.0]
    assert task.tensor(card, "predict", values).shape == (1, 2)


def test_a_classifier_keeps_label_and_probabilities() -> None:
    card = _card("binary-classification", ["no", "yes"], label="yes", probabilities=[0.2, 0.8])
    assert output_names(card) == ["label", "probabilities", "warnings"]
    assert task_of(card).encode_v1(card, np.array([[0.2, 0.8]])) == [
        {"label": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}
    ]


def test_a_regressor_card_refuses_probabilities_and_classification_metrics() -> None:
    with pytest.raises(ValueError, match="no probabilities"):
        _card("regression", ["y"], probabilities=[1.0])


def test_live_regression_figures() -> None:
    truth = np.array([[1.0], [2.0], [3.0]])
    figures = regression_figures(truth + 1.0, truth)
    assert figures["mae"] == 1.0 and figures["rmse"] == 1.0
    assert figures["r2"] == pytest.approx(1.0 - 3.0 / 2.0)
    assert regression_figures(np.zeros((0, 1)), np.zeros((0, 1)))["mae"] is None
    assert regression_figures(np.array([[1.0]]), np.array([[2.0]]))["r2"] is None


def test_table_statistics_code_categories_other_and_missing() -> None:
    spec = TableInput(
        features=[
            Feature(name="n", missing=True),
            Feature(name="c", dtype="string", categories=["x", "y"], missing=True),
            Feature(name="b", dtype="boolean"),
        ]
    )
    stats = table_statistics(spec, [(1.0, "y", True), (None, "zzz", False), (2.0, None, True)])
    assert math.isnan(stats[1, 0]) and stats[0, 0] == 1.0
    categories = ["x", "y", OTHER_CATEGORY, MISSING_CATEGORY]
    assert [categories[int(v)] for v in stats[:, 1]] == ["y", OTHER_CATEGORY, MISSING_CATEGORY]
    assert stats[:, 2].tolist() == [1.0, 0.0, 1.0]


def test_the_cli_refuses_with_exit_code_2_and_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    code = main(
        ["import", str(tmp_path / "model.pkl"), "--name", "x", "--models-dir", str(tmp_path)]
    )
    assert code == 2
    assert "--trust-pickle" in capsys.readouterr().err
