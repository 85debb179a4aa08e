"""The JSON of a regressor's comparison from its running sums: pure functions (no I/O), the
values counterpart of `app.monitoring.comparison_json`."""

from __future__ import annotations

import math
from typing import Any

from app.monitoring.comparison import interval, wilson
from app.monitoring.comparison_values import (
    ValueShadowCounts,
    ValueVersionCounts,
    histogram,
    mean_interval,
    paired_t_test,
    quantile,
    rmse_interval,
    welch_difference,
    welch_t_test,
)


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _pair(low: float, high: float) -> list[float | None]:
    return [_num(low), _num(high)]


def value_errors_json(counts: ValueVersionCounts) -> dict[str, Any]:
    """One version's live MAE and RMSE with their 95% intervals."""
    n = counts.feedback_rows
    mae = counts.absolute()
    rmse, low, high = rmse_interval(n, counts.squares, counts.fourths)
    return {
        "rows": n,
        "rows_predicted": counts.rows,
        "mae": _num(mae.value) if n else None,
        "mae_interval_95": _pair(mae.low, mae.high),
        "rmse": _num(rmse) if n else None,
        "rmse_interval_95": _pair(low, high),
    }


def value_canary_json(
    candidate: ValueVersionCounts, baseline: ValueVersionCounts
) -> dict[str, Any]:
    """The error part of a regressor's canary comparison (unpaired, Welch)."""
    cand, base = candidate.absolute(), baseline.absolute()
    test = welch_t_test(cand, base)
    diff, low, high = welch_difference(cand, base)
    return {
        "errors": {
            "target": "the first target",
            "baseline": value_errors_json(baseline),
            "candidate": value_errors_json(candidate),
            "difference": {"mae": _num(diff), "interval_95": _pair(low, high)},
            "welch_t_test": {
                "t": _num(test.t),
                "df": _num(test.df),
                "p_value": _num(test.p_value),
                "p_candidate_worse": _num(test.p_worse),
            },
        }
    }


def value_shadow_json(counts: ValueShadowCounts) -> dict[str, Any]:
    """The differences and paired errors of a regressor's shadow comparison."""
    diff = mean_interval(counts.rows, counts.diff_sum, counts.diff_squares)
    n = counts.feedback_rows
    gap = mean_interval(n, counts.gap_sum, counts.gap_squares)
    test = paired_t_test(n, counts.gap_sum, counts.gap_squares)
    rows = counts.rows
    return {
        "agreement": {
            "rows": rows,
            "agreed": counts.within,
            "rate": round(counts.within / rows, 6) if rows and counts.tolerance else None,
            "interval_95": interval(*wilson(counts.within, rows)),
            "tolerance": counts.tolerance,
            "note": "rows whose predictions differ by at most the tolerance",
        },
        "differences": {
            "rows": rows,
            "note": "candidate - baseline prediction, first target",
            "mean": _num(diff.value) if rows else None,
            "interval_95": _pair(diff.low, diff.high),
            "quantiles": {
                f"p{round(100 * q)}": _num(quantile(counts.bins, q))
                for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
            },
            "histogram": histogram(counts.bins),
        },
        "errors": {
            "feedback_rows": n,
            "baseline": {
                "mae": _num(counts.base_abs / n) if n else None,
                "rmse": _num(math.sqrt(counts.base_squares / n)) if n else None,
            },
            "candidate": {
                "mae": _num(counts.cand_abs / n) if n else None,
                "rmse": _num(math.sqrt(counts.cand_squares / n)) if n else None,
            },
            "difference": {"mae": _num(gap.value), "interval_95": _pair(gap.low, gap.high)},
            "paired_t_test": {
                "t": _num(test.t),
                "p_value": _num(test.p_value),
                "p_candidate_worse": _num(test.p_worse),
            },
        },
    }
