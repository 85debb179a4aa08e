"""The task plug-ins encode model outputs per protocol; live regression figures; table drift
statistics."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.monitoring.profile import MISSING_CATEGORY, OTHER_CATEGORY, table_statistics
from app.monitoring.quality import regression_figures
from app.schemas.card import CardExample, Feature, ModelCard, TableInput, TabularInput
from app.tasks import DEFAULT_PROBABILITY_FLOOR, TASK_KINDS, output_names, task_of
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


def test_the_task_decides_bounding_replay_scale_and_sigmoid_columns() -> None:
    classifier = _card("binary-classification", ["no", "yes"], label="yes")
    regressor = _card("regression", ["price"], prediction=[3.0])
    classes, values = task_of(classifier), task_of(regressor)
    assert classes.probability_floor(classifier) == DEFAULT_PROBABILITY_FLOOR
    assert values.probability_floor(regressor) is None
    recorded = np.array([[0.5, 250.0]])
    assert classes.replay_scale(recorded).tolist() == [[1.0, 1.0]]
    assert values.replay_scale(recorded).tolist() == [[1.0, 250.0]]
    sigmoid = np.array([[0.25]])
    assert classes.model_outputs(sigmoid).tolist() == [[0.75, 0.25]]
    assert values.model_outputs(sigmoid).tolist() == [[0.25]]
    assert (classes.replayed, values.replayed) == ("probabilities", "predictions")


def test_the_task_names_the_card_task_and_records_examples() -> None:
    assert TASK_KINDS["classification"].card_task(2) == "binary-classification"
    assert TASK_KINDS["classification"].card_task(3) == "multiclass-classification"
    assert TASK_KINDS["regression"].card_task(2) == "regression"
    classes, values = TASK_KINDS["classification"], TASK_KINDS["regression"]
    # The first most probable label on a tie, chosen before rounding.
    recorded = classes.example([1.0], ["a", "b"], [0.499999999, 0.500000001])
    assert (recorded.label, recorded.probabilities) == ("b", [0.5, 0.5])
    assert classes.example([1.0], ["a", "b"], None).label == "a"
    assert values.example([1.0], ["t"], [1.123456789]).prediction == [1.1234568]
    assert values.example([1.0], ["t"], None).prediction is None


def test_each_task_writes_its_v2_answer() -> None:
    regressor = _card("regression", ["price"], prediction=[3.0])
    body, _, _ = task_of(regressor).encode_v2(
        regressor, "m", 1, None, np.array([[1.5]]), [("predict", False)], []
    )
    assert json.loads(body)["outputs"][0]["data"] == [1.5]
    classifier = _card("binary-classification", ["no", "yes"], label="yes")
    body, _, _ = task_of(classifier).encode_v2(
        classifier, "m", 1, None, np.array([[0.2, 0.8]]), [("label", False)], []
    )
    assert json.loads(body)["outputs"][0]["data"] == ["yes"]


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
