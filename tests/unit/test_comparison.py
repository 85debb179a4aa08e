"""The comparison statistics, against scipy and published values on known tables, and the
verdicts of the promotion rules."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from app.monitoring.comparison import (
    ShadowCounts,
    VersionCounts,
    judge_canary,
    judge_shadow,
    look_alpha,
    look_of,
    mcnemar,
    newcombe_difference,
    paired_difference,
    two_proportion_test,
    wilson,
)
from app.repository.rules import PromotionRules


def _exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar from the binomial sum (independent of scipy)."""
    n = b + c
    tail: float = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(("b", "c"), [(3, 11), (10, 10), (0, 7), (25, 40), (120, 80)])
def test_mcnemar_matches_the_exact_binomial_sum_and_scipy(b: int, c: int) -> None:
    result = mcnemar(b, c)
    assert result.p_value == pytest.approx(_exact_mcnemar(b, c), rel=1e-9)
    assert result.p_value == pytest.approx(scipy_stats.binomtest(b, b + c).pvalue, rel=1e-12)
    worse = sum(math.comb(b + c, i) for i in range(b, b + c + 1)) / 2 ** (b + c)
    assert result.p_worse == pytest.approx(worse, rel=1e-9)


def test_mcnemar_without_discordant_rows_finds_nothing() -> None:
    assert mcnemar(0, 0).p_value == 1.0 and mcnemar(0, 0).p_worse == 1.0


@pytest.mark.parametrize(
    "table", [(56, 70, 48, 80), (9, 10, 3, 10), (940, 1000, 930, 1000), (5, 50, 15, 50)]
)
def test_two_proportion_test_is_the_uncorrected_chi_squared_test(
    table: tuple[int, int, int, int],
) -> None:
    k1, n1, k2, n2 = table
    result = two_proportion_test(k1, n1, k2, n2)
    chi2, p_value, _, _ = scipy_stats.chi2_contingency(
        [[k1, n1 - k1], [k2, n2 - k2]], correction=False
    )
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.z**2 == pytest.approx(chi2, rel=1e-9)
    # One-sided: the candidate (first) less accurate.
    assert result.p_worse == pytest.approx(scipy_stats.norm.cdf(result.z), rel=1e-12)


def test_newcombe_interval_reproduces_newcombe_1998() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, 56/70 - 48/80, method 10.
    diff, low, high = newcombe_difference(56, 70, 48, 80)
    assert diff == pytest.approx(0.2)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (81, 263), (29, 30), (500, 1000)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_paired_difference_is_agresti_min() -> None:
    diff, low, high = paired_difference(both=50, b=10, c=20, neither=20)
    assert diff == pytest.approx(0.1)
    # Agresti & Min (2005): 0.5 added to each cell, n + 2.
    adjusted = (20.5 - 10.5) / 102
    se = math.sqrt(((10.5 + 20.5) / 102 - adjusted**2) / 102)
    assert low == pytest.approx(adjusted - 1.959963984540054 * se)
    assert high == pytest.approx(adjusted + 1.959963984540054 * se)


RULES = PromotionRules(min_feedback_rows=100, max_accuracy_drop=0.02, significance_level=0.05)


def test_looks_double_and_spend_half_the_remaining_level() -> None:
    assert look_of(99, RULES) is None
    assert [look_of(n, RULES) for n in (100, 199, 200, 399, 400, 800)] == [0, 0, 1, 1, 2, 3]
    assert sum(look_alpha(k, RULES) for k in range(30)) < RULES.significance_level


def test_too_little_feedback_waits() -> None:
    verdict = judge_canary(
        VersionCounts(feedback_rows=99, correct=10), VersionCounts(feedback_rows=500), RULES
    )
    assert verdict.action == "wait" and verdict.text.startswith("not enough data yet")


def test_a_much_worse_canary_is_rolled_back_and_an_equal_one_promoted() -> None:
    worse = judge_canary(
        VersionCounts(feedback_rows=100, correct=60),
        VersionCounts(feedback_rows=100, correct=95),
        RULES,
    )
    assert worse.action == "rollback" and "candidate worse at the 2.5% level" in worse.text
    equal = judge_canary(
        VersionCounts(feedback_rows=6400, correct=6080),
        VersionCounts(feedback_rows=6400, correct=6080),
        RULES,
    )
    assert equal.action == "promote" and "no significant difference" in equal.text


def test_a_slow_canary_is_rolled_back() -> None:
    verdict = judge_canary(
        VersionCounts(feedback_rows=6400, correct=6080, p99_ms=30.0, latency_samples=100),
        VersionCounts(feedback_rows=6400, correct=6080, p99_ms=10.0, latency_samples=100),
        RULES,
    )
    assert verdict.action == "rollback" and "p99 latency" in verdict.text


def test_an_identical_shadow_is_promoted_and_a_disagreeing_one_rolled_back() -> None:
    same = ShadowCounts(rows=300, agreed=300, both_right=280, neither=20)
    assert judge_shadow(same, RULES).action == "promote"
    worse = ShadowCounts(
        rows=300, agreed=150, both_right=150, baseline_only=130, candidate_only=0, neither=20
    )
    verdict = judge_shadow(worse, RULES)
    assert verdict.action == "rollback"
    assert "candidate worse" in verdict.text and "agreement" in verdict.text
