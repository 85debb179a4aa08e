"""Live quality of one model version from its stored rows: accuracy with its interval,
regression errors, and drift of the input statistics against the training profile. Pure
functions over rows the store returned (no I/O), called by the monitor and promotion."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from app.monitoring.profile import (
    PREDICTED_LABEL,
    CategoricalReference,
    ContinuousReference,
    Profile,
    category_names,
)
from app.monitoring.stats import (
    DriftResult,
    categorical_drift,
    continuous_drift,
    wilson_interval,
)
from app.monitoring.store import Store
from app.schemas.card import HeldOutMetrics, ModelCard, RegressionMetrics
from app.settings import DriftSettings


def drift_report(
    profile: Profile | None,
    names: list[str],
    window: list[Any],
    settings: DriftSettings,
) -> dict[str, Any]:
    """The drift section of a version's report: each statistic of the newest `window` rows
    ((statistics bytes, predicted label), newest first, as `Store.recent_rows` returns them;
    `names` their statistics) tested against `profile`; a note instead when there is no
    profile or too few distinct rows."""
    out: dict[str, Any] = {
        "window_rows": settings.drift_window_rows,
        "rows": len(window),
        "distinct_rows": 0,
        "profile": profile is not None,
        "flagged": False,
        "statistics": [],
    }
    if profile is None:
        out["note"] = (
            "this version's artifact has no reference profile (profile.json): run "
            "python -m training profile on it to enable drift detection"
        )
        return out
    stats = np.frombuffer(b"".join(row[0] for row in window), dtype=np.float64)
    stats = stats.reshape(len(window), len(names))
    # Identical inputs count once: a client re-sending the same rows (retries, a popular
    # item) repeats one observation, and counting it again would make the tests as sure
    # as if it were many independent ones.
    keep = np.sort(np.unique(stats, axis=0, return_index=True)[1])
    stats = stats[keep]
    labels = [window[i][1] for i in keep]
    out["distinct_rows"] = len(keep)
    if len(keep) < settings.drift_min_rows:
        out["note"] = (
            f"drift is tested from {settings.drift_min_rows} distinct stored rows; "
            f"{len(keep)} so far"
        )
        return out
    tests = len(profile.statistics)
    alpha = settings.drift_alpha / max(1, tests)
    results: list[DriftResult] = []
    for index, stat in enumerate(names):
        reference = profile.statistics.get(stat)
        if isinstance(reference, CategoricalReference):  # a table's string/boolean feature
            results.append(
                categorical_drift(
                    stat,
                    category_names(stats[:, index], reference),
                    reference,
                    alpha=alpha,
                    psi_threshold=settings.drift_psi_threshold,
                )
            )
        elif isinstance(reference, ContinuousReference):
            column = stats[:, index]
            results.append(
                continuous_drift(
                    stat,
                    column[np.isfinite(column)],  # a missing value is not a number
                    reference,
                    alpha=alpha,
                    psi_threshold=settings.drift_psi_threshold,
                )
            )
    label_reference = profile.statistics.get(PREDICTED_LABEL)
    if isinstance(label_reference, CategoricalReference):
        results.append(
            categorical_drift(
                PREDICTED_LABEL,
                labels,
                label_reference,
                alpha=alpha,
                psi_threshold=settings.drift_psi_threshold,
            )
        )
    out["statistics"] = [
        {
            "statistic": r.statistic,
            "kind": r.kind,
            "test": r.test,
            "score": round(r.score, 6),
            "p_value": float(f"{r.p_value:.6g}"),
            "window_rows": r.window_rows,
            "flag": r.flag,
        }
        for r in results
    ]
    out["flagged"] = any(r.flag for r in results)
    return out


def regression_figures(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE and R² (averaged over targets) of (N, T) predictions against truths; None
    where undefined (no rows; R² with fewer than 2 rows or a constant truth)."""
    if len(truth) == 0:
        return {"mae": None, "rmse": None, "r2": None}
    error = predicted.reshape(truth.shape) - truth
    mae = float(np.abs(error).mean())
    rmse = float(np.sqrt((error**2).mean()))
    spread = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    r2 = (
        float(np.mean(1.0 - (error**2).sum(axis=0) / spread))
        if len(truth) >= 2 and (spread > 0).all()
        else None
    )
    return {
        "mae": round(mae, 6),
        "rmse": round(rmse, 6),
        "r2": None if r2 is None else round(r2, 6),
    }


def accuracy_figures(correct: int, total: int, held_out: float | None) -> dict[str, Any]:
    """Accuracy of `correct` out of `total` rows with its Wilson 95% interval, and whether
    that interval lies below the held-out accuracy."""
    low, high = wilson_interval(correct, total)
    return {
        "rows": total,
        "correct": correct,
        "accuracy": round(correct / total, 6) if total else None,
        "interval_95": [round(low, 6), round(high, 6)],
        "below_held_out": bool(total and held_out is not None and high < held_out),
    }


class LiveQuality:
    """The live figures of one version (and caller) from the store, as its task asks for
    them (`Task.live_quality`): `labelled` for labels, `valued` for target values."""

    def __init__(
        self,
        store: Store,
        model: str,
        version: int,
        caller: str | None,
        window_rows: int,
        correct: int,
    ) -> None:
        self.store, self.model, self.version, self.caller = store, model, version, caller
        self.window_rows = window_rows
        self.correct = correct
        # (all time, recent) accuracy figures once `labelled` ran: the gauges' source.
        self.accuracies: tuple[dict[str, Any], dict[str, Any]] | None = None

    def labelled(self, card: ModelCard, feedback_rows: int) -> dict[str, Any]:
        """Accuracy (all time and over the newest `window_rows` rows with feedback, each with
        its Wilson interval) and the confusion matrix over `card.labels`."""
        store, labels = self.store, list(card.labels)
        recent = store.recent_feedback(self.model, self.version, self.window_rows, self.caller)
        recent_correct = sum(true == predicted for true, predicted in recent)
        held_out = card.metrics.accuracy if isinstance(card.metrics, HeldOutMetrics) else None
        all_time = accuracy_figures(self.correct, feedback_rows, held_out)
        recent_accuracy = accuracy_figures(recent_correct, len(recent), held_out)
        self.accuracies = (all_time, recent_accuracy)
        cells = store.confusion(self.model, self.version, self.caller)
        return {
            "held_out_accuracy": held_out,
            "accuracy": {
                "all_time": all_time,
                "recent": {**recent_accuracy, "window_rows": self.window_rows},
            },
            "confusion_matrix": {
                "labels": labels,
                "matrix": [[cells.get((t, p), 0) for p in labels] for t in labels],
            },
        }

    def valued(self, card: ModelCard) -> dict[str, Any]:
        """MAE, RMSE and R² over the newest `window_rows` rows with feedback, next to the
        held-out ones; no accuracy or confusion matrix."""
        pairs = self.store.recent_truths(self.model, self.version, self.window_rows, self.caller)
        held = card.metrics
        return {
            "held_out_accuracy": None,
            "accuracy": None,
            "confusion_matrix": None,
            "regression": {
                "rows": len(pairs),
                "window_rows": self.window_rows,
                "held_out": {"mae": held.mae, "rmse": held.rmse, "r2": held.r2}
                if isinstance(held, RegressionMetrics)
                else None,
                **regression_figures(
                    np.array([np.frombuffer(p, dtype=np.float32) for p, _ in pairs]),
                    np.array([json.loads(t) for _, t in pairs], dtype=np.float64),
                ),
            },
        }
