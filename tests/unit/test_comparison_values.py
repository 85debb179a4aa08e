"""The regressors' comparison statistics (app.monitoring.comparison_values) against scipy on
known data, and their verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.monitoring.comparers import VALUES
from app.monitoring.comparison_values import (
    ValueShadowCounts,
    ValueVersionCounts,
    bin_edges,
    bin_of,
    histogram,
    judge_value_canary,
    judge_value_shadow,
    mean_interval,
    paired_t_test,
    quantile,
    rmse_interval,
    welch_difference,
    welch_t_test,
)
from app.repository.rules import PromotionRules

RNG = np.random.default_rng(2026)
BASE_ERR = RNG.normal(0, 10, 400)
CAND_ERR = BASE_ERR + RNG.normal(0.8, 4, 400)


def _mean(x: np.ndarray, alpha: float = 0.025) -> object:
    return mean_interval(len(x), float(x.sum()), float((x * x).sum()), alpha)


def test_the_t_interval_of_a_mean_is_scipy_s() -> None:
    x = np.abs(BASE_ERR)
    m = _mean(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (m.value, m.low, m.high) == pytest.approx((x.mean(), low, high))  # type: ignore[attr-defined]


def test_the_paired_t_test_of_absolute_errors_is_scipy_s_ttest_rel() -> None:
    a, b = np.abs(CAND_ERR), np.abs(BASE_ERR)
    gap = a - b
    mine = paired_t_test(len(gap), float(gap.sum()), float((gap * gap).sum()))
    two = stats.ttest_rel(a, b)
    worse = stats.ttest_rel(a, b, alternative="greater")
    assert mine.t == pytest.approx(two.statistic)
    assert mine.p_value == pytest.approx(two.pvalue)
    assert mine.p_worse == pytest.approx(worse.pvalue)
    assert paired_t_test(5, 0.0, 0.0).p_value == 1.0  # identical predictions: no variation


def test_welch_s_test_and_interval_are_scipy_s() -> None:
    a, b = np.abs(CAND_ERR[:150]), np.abs(BASE_ERR[200:])
    ma, mb = _mean(a), _mean(b)
    mine = welch_t_test(ma, mb)  # type: ignore[arg-type]
    two = stats.ttest_ind(a, b, equal_var=False)
    worse = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert (mine.t, mine.p_value, mine.p_worse) == pytest.approx(
        (two.statistic, two.pvalue, worse.pvalue)
    )
    # The interval's bounds are where the one-sided test of the shifted difference is at alpha.
    diff, low, high = welch_difference(ma, mb, 0.025)  # type: ignore[arg-type]
    assert diff == pytest.approx(a.mean() - b.mean())
    at_high = stats.ttest_ind(a - high, b, equal_var=False, alternative="less")
    at_low = stats.ttest_ind(a - low, b, equal_var=False, alternative="greater")
    assert at_high.pvalue == pytest.approx(0.025) and at_low.pvalue == pytest.approx(0.025)


def test_rmse_and_its_interval() -> None:
    e = BASE_ERR
    rmse, low, high = rmse_interval(len(e), float((e**2).sum()), float((e**4).sum()))
    assert rmse == pytest.approx(math.sqrt(np.mean(e**2)))
    m_low, m_high = stats.t.interval(0.95, len(e) - 1, loc=np.mean(e**2), scale=stats.sem(e**2))
    assert (low, high) == pytest.approx((math.sqrt(m_low), math.sqrt(m_high)))


def test_binned_quantiles_are_within_a_bin_of_numpy_s() -> None:
    d = RNG.normal(0.5, 3, 5000)
    bins: dict[int, int] = {}
    for value in d:
        bins[bin_of(float(value))] = bins.get(bin_of(float(value)), 0) + 1
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        exact = float(np.quantile(d, q))
        assert quantile(bins, q) == pytest.approx(exact, rel=0.13, abs=1e-3)
    for value in (1e-9, 0.3, -0.3, 7.0, 1e9):
        low, high = bin_edges(bin_of(value))
        assert low <= value <= high or (value == 1e9 and high == math.inf)
    bars = histogram(bins)
    assert len(bars) <= 24 and sum(b["rows"] for b in bars) == len(d)


def _shadow(base: np.ndarray, cand: np.ndarray, truth: np.ndarray, tolerance: float) -> object:
    counts = VALUES.shadow_counts(tolerance)
    total = [0.0] * VALUES.shadow_width
    for b, c, t in zip(base, cand, truth, strict=True):
        VALUES.shadow_row(counts, repr(float(b)), repr(float(c)))
        vector = VALUES.shadow_feedback(repr(float(b)), repr(float(c)), f"[{t}]")
        assert vector is not None
        total = [x + y for x, y in zip(total, vector, strict=True)]
    VALUES.shadow_total(counts, total)
    return counts


RULES = PromotionRules(min_feedback_rows=200, max_error_increase=0.05)


def test_a_regressor_s_shadow_verdicts() -> None:
    truth = RNG.normal(150, 50, 400)
    base = truth + BASE_ERR
    same = _shadow(base, base, truth, 5.0)
    verdict = judge_value_shadow(same, RULES)  # type: ignore[arg-type]
    assert verdict.action == "promote", verdict.text
    worse = _shadow(base, truth + 2.5 * BASE_ERR, truth, 5.0)
    verdict = judge_value_shadow(worse, RULES)  # type: ignore[arg-type]
    assert verdict.action == "rollback" and "candidate worse" in verdict.text
    few = _shadow(base[:50], base[:50], truth[:50], 5.0)
    assert judge_value_shadow(few, RULES).action == "wait"  # type: ignore[arg-type]
    # Equal errors but predictions far apart: the agreement rule rolls it back.
    apart = _shadow(base, truth - BASE_ERR, truth, 1.0)
    verdict = judge_value_shadow(apart, RULES.model_copy(update={"min_agreement": 0.9}))  # type: ignore[arg-type]
    assert verdict.action == "rollback" and "within" in verdict.text


def _version(errors: np.ndarray) -> ValueVersionCounts:
    counts = ValueVersionCounts(rows=len(errors))
    counts.feedback_rows = len(errors)
    counts.abs_sum = float(np.abs(errors).sum())
    counts.squares = float((errors**2).sum())
    counts.fourths = float((errors**4).sum())
    return counts


def test_a_regressor_s_canary_verdicts() -> None:
    other = RNG.normal(0, 10, 400)
    assert judge_value_canary(_version(other), _version(BASE_ERR), RULES).action in (
        "promote",
        "wait",
    )
    verdict = judge_value_canary(_version(2 * other), _version(BASE_ERR), RULES)
    assert verdict.action == "rollback" and "Welch" in verdict.text
    assert judge_value_canary(_version(other[:20]), _version(BASE_ERR), RULES).action == "wait"


def test_the_shadow_tally_of_values_counts_differences_and_tolerance() -> None:
    counts = ValueShadowCounts(tolerance=1.0)
    for b, c in ((1.0, 1.5), (2.0, 4.0), (3.0, 3.0)):
        VALUES.shadow_row(counts, repr(b), repr(c))
    VALUES.shadow_row(counts, repr(1.0), None)
    assert (counts.rows, counts.failed, counts.within) == (3, 1, 2)
    assert counts.diff_sum == pytest.approx(2.5) and counts.diff_squares == pytest.approx(4.25)
