"""The JSON of a comparison between two versions of a model, from its counts: pure
functions (no I/O) that `app.monitoring.promotion.Promoter` calls with what the store and the
served versions hold."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from app.monitoring.comparison import (
    ShadowCounts,
    VersionCounts,
    interval,
    mcnemar,
    newcombe_difference,
    paired_difference,
    two_proportion_test,
    wilson,
)


def shadow_json(
    labels: list[str],
    counts: ShadowCounts,
    base_serving: VersionCounts,
    latencies: Collection[float] | None,
) -> dict[str, Any]:
    """The body of a shadow comparison: agreement, the disagreement matrix over `labels`,
    paired accuracy (McNemar) and serving figures (the shadow's latencies in ms)."""
    n = counts.feedback_rows
    b, c = counts.baseline_only, counts.candidate_only
    base_correct = counts.both_right + b
    cand_correct = counts.both_right + c
    test = mcnemar(b, c)
    diff, low, high = paired_difference(counts.both_right, b, c, counts.neither)
    matrix = [[counts.matrix.get((t, p), 0) for p in labels] for t in labels]
    shadow_p99 = (
        round(float(np.percentile(np.fromiter(latencies, float), 99)), 3) if latencies else None
    )
    answered = counts.rows + counts.candidate_failed
    return {
        "agreement": {
            "rows": counts.rows,
            "agreed": counts.agreed,
            "rate": round(counts.agreed / counts.rows, 6) if counts.rows else None,
            "interval_95": interval(*wilson(counts.agreed, counts.rows)),
        },
        "disagreement": {
            "labels": labels,
            "matrix": matrix,
            "rows": counts.rows,
            "note": "rows: the baseline's label; columns: the candidate's",
        },
        "accuracy": {
            "feedback_rows": n,
            "baseline": _accuracy(base_correct, n),
            "candidate": _accuracy(cand_correct, n),
            "difference": {"value": round(diff, 6), "interval_95": interval(low, high)},
            "mcnemar": {
                "baseline_only_right": b,
                "candidate_only_right": c,
                "p_value": _p(test.p_value),
                "p_candidate_worse": _p(test.p_worse),
            },
        },
        "serving": {
            "baseline": _serving_json(base_serving),
            "candidate": {
                "copies": answered,
                "failed": counts.candidate_failed,
                "error_rate": round(counts.candidate_failed / answered, 6) if answered else None,
                "p99_ms": shadow_p99,
                "latency_samples": len(latencies) if latencies else 0,
                "note": "the shadow's own inference time on this replica (its copies "
                "are not requests): not comparable with a request's latency",
            },
        },
    }


def canary_json(
    candidate: VersionCounts, baseline: VersionCounts, drift: dict[str, Any]
) -> dict[str, Any]:
    """The body of a canary comparison: unpaired accuracy (two-proportion z-test), each
    version's `drift` as given, and serving figures."""
    test = two_proportion_test(
        candidate.correct, candidate.feedback_rows, baseline.correct, baseline.feedback_rows
    )
    diff, low, high = newcombe_difference(
        candidate.correct, candidate.feedback_rows, baseline.correct, baseline.feedback_rows
    )
    return {
        "accuracy": {
            "baseline": {
                **_accuracy(baseline.correct, baseline.feedback_rows),
                "rows_predicted": baseline.rows,
            },
            "candidate": {
                **_accuracy(candidate.correct, candidate.feedback_rows),
                "rows_predicted": candidate.rows,
            },
            "difference": {"value": round(diff, 6), "interval_95": interval(low, high)},
            "z_test": {
                "z": round(test.z, 6),
                "p_value": _p(test.p_value),
                "p_candidate_worse": _p(test.p_worse),
            },
        },
        "drift": drift,
        "serving": {
            "baseline": _serving_json(baseline),
            "candidate": _serving_json(candidate),
        },
    }


def _accuracy(correct: int, rows: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "correct": correct,
        "accuracy": round(correct / rows, 6) if rows else None,
        "interval_95": interval(*wilson(correct, rows)),
    }


def _serving_json(counts: VersionCounts) -> dict[str, Any]:
    return {
        "requests": counts.requests,
        "errors": counts.errors,
        "error_rate": round(counts.errors / counts.requests, 6) if counts.requests else None,
        "p99_ms": counts.p99_ms,
        "latency_samples": counts.latency_samples,
        "note": "this replica's requests since it started",
    }


def _p(value: float) -> float:
    return float(f"{value:.6g}")
