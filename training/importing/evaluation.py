"""Held-out evaluation of an imported model, through the server's own input path.

Classifiers: the project's classification metrics (`training.common.evaluate`), the
calibration of the probabilities as imported (ECE and the reliability table; nothing is
recalibrated) and `errors.json` (the most confident mistakes, for the report page).
Regressors: MAE, RMSE and R² (per target too, for several). Numeric tabular models also get
`profile.json`, the reference that drift detection compares live traffic with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.kinds import kind_of
from app.monitoring.profile import StatisticsComputer, build_profile
from app.schemas.card import (
    Calibration,
    HeldOutMetrics,
    ModelCard,
    RegressionMetrics,
    sha256_file,
)
from app.tasks import task_of
from training.calibration import ECE_BINS, reliability
from training.common import evaluate, misclassified_examples, write_errors_artifact
from training.importing.data import Dataset
from training.importing.errors import ImportRefused

MAX_EVAL_ROWS = 20_000
BATCH = 512
MAX_POINTS = 500


def regression_metrics(
    y_true: np.ndarray, predicted: np.ndarray, targets: list[str]
) -> RegressionMetrics:
    """MAE, RMSE, R² averaged uniformly over the targets; per target for several."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = y_true.reshape(len(y_true), -1)

    def scores(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        return {
            "mae": round(float(mean_absolute_error(t, p)), 6),
            "rmse": round(float(np.sqrt(mean_squared_error(t, p))), 6),
            "r2": round(float(r2_score(t, p)), 6),
        }

    per_target = (
        {name: scores(y_true[:, i], predicted[:, i]) for i, name in enumerate(targets)}
        if len(targets) > 1
        else None
    )
    return RegressionMetrics(
        test_size=len(y_true), per_target=per_target, **scores(y_true, predicted)
    )


def largest_errors(
    instances: list[Any], truth: np.ndarray, outputs: np.ndarray, limit: int = 12
) -> dict[str, Any]:
    """A regressor's held-out record for the report (`errors.json`): (true, predicted)
    points of the first target (at most MAX_POINTS, evenly thinned) and the `limit` rows
    with the largest absolute error, largest first."""
    error = np.abs(truth - outputs).max(axis=1)
    order = np.lexsort((np.arange(len(error)), -error))[:limit]
    step = max(1, len(truth) // MAX_POINTS)
    return {
        "evaluated_on": "test",
        "rows": len(truth),
        "kind": "regression",
        "points": [
            [round(float(t), 6), round(float(p), 6)]
            for t, p in zip(truth[::step, 0], outputs[::step, 0], strict=True)
        ],
        "examples": [
            {
                "index": int(i),
                "instance": instances[i],
                "label": ", ".join(f"{v:.4g}" for v in truth[i]),
                "predicted": ", ".join(f"{v:.4g}" for v in outputs[i]),
            }
            for i in order
        ],
    }


def evaluate_into(
    card: ModelCard,
    folder: Path,
    data: Dataset,
    y: Any,
    serve: Callable[[list[Any]], np.ndarray],
) -> ModelCard:
    """The card with held-out metrics (and the artifacts they made in `folder`) added."""
    if y is None:
        raise ImportRefused("the evaluation data has no target; pass --target COLUMN")
    instances = data.instances[:MAX_EVAL_ROWS]
    y_true = np.asarray(y)[: len(instances)]
    if len(y_true) != len(instances):
        raise ImportRefused(
            f"the evaluation data has {len(instances)} rows but {len(y_true)} targets"
        )
    outputs = np.concatenate(
        [serve(instances[i : i + BATCH]) for i in range(0, len(instances), BATCH)]
    )
    artifacts = dict(card.artifacts)
    update: dict[str, Any] = {}
    # The task's held-out measures (the report's layout of them: app.report.quality).
    metrics, predicted = _HELD_OUT[task_of(card).quality_layout](
        card, folder, instances, y_true, outputs, artifacts, update
    )
    update["metrics"] = metrics
    rows = kind_of(card).record_rows(card, list(instances))
    if rows is not None:
        profile = build_profile(StatisticsComputer(card), rows, predicted)
        path = profile.write(folder)
        artifacts[path.name] = sha256_file(path)
        update["profile_file"] = path.name
    update["artifacts"] = artifacts
    return card.model_copy(update=update)


def _classes_held_out(
    card: ModelCard,
    folder: Path,
    instances: list[Any],
    y_true: np.ndarray,
    outputs: np.ndarray,
    artifacts: dict[str, str],
    update: dict[str, Any],
) -> tuple[HeldOutMetrics, list[str]]:
    """A classifier's metrics, calibration and errors (added to `artifacts` and `update`),
    and the label predicted for each row."""
    index = {label: i for i, label in enumerate(card.labels)}
    as_text = {str(v) for v in y_true}
    if not as_text <= set(index) and as_text <= {str(i) for i in range(len(card.labels))}:
        # Class indices (a Keras model's sparse targets) for labels given by name.
        y_true = np.array([card.labels[int(v)] for v in y_true])
    unknown = sorted({str(v) for v in y_true} - set(index))
    if unknown:
        raise ImportRefused(
            f"the evaluation targets hold labels the model does not know: {unknown[:5]}"
        )
    y_index = np.array([index[str(v)] for v in y_true])
    metrics = evaluate(y_index, outputs, card.labels, "test")
    ece, table = reliability(y_index, outputs, ECE_BINS)
    update["calibration"] = Calibration(
        method="none: the probabilities as imported",
        fitted_on="not recalibrated",
        evaluated_on="test",
        bins=ECE_BINS,
        ece_before=ece,
        ece_after=ece,
        accuracy_before=metrics.accuracy,
        reliability=table,
    )
    errors = misclassified_examples(instances, y_index, outputs, card.labels, "test")
    name = write_errors_artifact(folder, errors)
    artifacts[name] = sha256_file(folder / name)
    update["errors_file"] = name
    predicted = [card.labels[i] for i in outputs.argmax(axis=1)]
    return metrics, predicted


def _values_held_out(
    card: ModelCard,
    folder: Path,
    instances: list[Any],
    y_true: np.ndarray,
    outputs: np.ndarray,
    artifacts: dict[str, str],
    update: dict[str, Any],
) -> tuple[RegressionMetrics, list[str]]:
    """A regressor's metrics and largest errors (added to `artifacts` and `update`), and the
    label each row is profiled under (the first target's name)."""
    truth = y_true.astype(np.float64).reshape(len(y_true), -1)
    metrics = regression_metrics(truth, outputs, card.labels)
    predicted = [card.labels[0]] * len(outputs)
    name = write_errors_artifact(folder, largest_errors(instances, truth, outputs))
    artifacts[name] = sha256_file(folder / name)
    update["errors_file"] = name
    return metrics, predicted


# The task's held-out quality layout (`Task.quality_layout`) -> how it is measured.
_HELD_OUT: dict[str, Callable[..., tuple[HeldOutMetrics | RegressionMetrics, list[str]]]] = {
    "classes": _classes_held_out,
    "values": _values_held_out,
}
