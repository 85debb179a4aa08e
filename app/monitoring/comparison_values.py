"""The statistics of comparing two versions of a regressor, and the verdict: pure functions
over running sums (no database, no HTTP), the values counterpart of
`app.monitoring.comparison` (labels). Every figure is on the first target (the one
explanations explain).

Shadow (paired: both versions answered the same rows):
- the differences d = candidate - baseline prediction on every paired row: their mean with a
  t interval, their quantiles and histogram (from fixed log-spaced bins, see `bin_of`), and
  the share within `tolerance` (the "agreement" of values) with a Wilson interval;
- on the rows with feedback, a paired t-test of the absolute errors: a = |e_candidate| -
  |e_baseline| per row, t = mean(a) / (sd(a) / sqrt(n)) with n - 1 degrees of freedom
  (Student 1908). A t-test and not Wilcoxon's signed-rank test: the t-test needs only n,
  sum(a) and sum(a^2), so it is kept up to date from what arrived since the last poll and
  is the same number as a recomputation, while the signed-rank test ranks every |a| afresh
  (all rows, each time). Its mean is also the quantity the rule bounds (MAE difference),
  which a signed-rank test (a median-type statistic) is not. With at least
  `min_feedback_rows` rows (10 or more, 200 by default) the central limit theorem makes
  the t-test's level close to nominal even for skewed errors.

Canary (unpaired): each version's MAE (t interval) and RMSE (the square root of a t interval
of the mean squared error), Welch's unequal-variances t-test of the absolute errors, and
Welch's interval of the MAE difference.

The verdict follows the same looks as for labels (`look_of`, `look_alpha`):
- rollback when the candidate's absolute errors are larger at the look's level AND its MAE
  exceeds the baseline's by more than `max_error_increase` x the baseline's MAE; or, for a
  shadow, when the share within tolerance is (at the look's level) below `min_agreement`;
  or, for a canary, when its p99 latency is over the limit;
- promote when the upper bound of (MAE candidate - MAE baseline) is below that margin
  (non-inferiority) and, for a shadow, the share within tolerance is at least
  `min_agreement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats as scipy_stats

from app.monitoring.comparison import (
    Verdict,
    VersionCounts,
    look_alpha,
    look_of,
    p99_too_slow,
    wilson,
)
from app.repository.rules import PromotionRules

# Differences of magnitude below this are one bin ("equal"); above `10**BIN_DECADES`, the last.
BIN_FLOOR = 1e-6
BIN_DECADES = 6
BINS_PER_DECADE = 20  # bin edges 10**(k/20) apart: 12% relative width
_TOP = 2 * BIN_DECADES * BINS_PER_DECADE  # bins per sign above the floor


def bin_of(difference: float) -> int:
    """The histogram bin of a difference: 0 for |d| < BIN_FLOOR, else sign(d) * k with k in
    1..2*BIN_DECADES*BINS_PER_DECADE, bins log-spaced (`bin_edges`)."""
    magnitude = abs(difference)
    if not magnitude >= BIN_FLOOR:  # also NaN
        return 0
    k = math.floor(BINS_PER_DECADE * math.log10(magnitude / BIN_FLOOR)) + 1
    k = min(k, _TOP)
    return k if difference > 0 else -k


def bin_edges(index: int) -> tuple[float, float]:
    """(low, high) of a bin (`bin_of`); the last bins are open (infinite)."""
    if index == 0:
        return -BIN_FLOOR, BIN_FLOOR
    k = abs(index)
    low = BIN_FLOOR * 10 ** ((k - 1) / BINS_PER_DECADE)
    high = math.inf if k == _TOP else BIN_FLOOR * 10 ** (k / BINS_PER_DECADE)
    return (low, high) if index > 0 else (-high, -low)


def quantile(bins: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of the binned values, linear within its bin (its resolution is
    the bin's width: 12% of the value)."""
    total = sum(bins.values())
    if total == 0:
        return None
    target = q * total
    seen = 0
    for index in sorted(bins):
        rows = bins[index]
        if seen + rows >= target and rows:
            low, high = bin_edges(index)
            low = max(low, -1e300)
            high = min(high, 1e300)
            if math.isinf(bin_edges(index)[1]):
                return low
            if math.isinf(bin_edges(index)[0]):
                return high
            return low + (high - low) * max(0.0, target - seen) / rows
        seen += rows
    return bin_edges(max(bins))[0]


def histogram(bins: dict[int, int], bars: int = 24) -> list[dict[str, float | int]]:
    """The non-empty bins merged, in order, into at most `bars` bars: low, high, rows."""
    filled = [(i, bins[i]) for i in sorted(bins) if bins[i]]
    if not filled:
        return []
    per_bar = math.ceil(len(filled) / bars)
    out: list[dict[str, float | int]] = []
    for start in range(0, len(filled), per_bar):
        group = filled[start : start + per_bar]
        low, high = bin_edges(group[0][0])[0], bin_edges(group[-1][0])[1]
        out.append(
            {
                "low": _finite(low),
                "high": _finite(high),
                "rows": sum(rows for _, rows in group),
            }
        )
    return out


def _finite(value: float) -> float:
    return float(f"{max(-1e300, min(1e300, value)):.6g}")


@dataclass(frozen=True)
class Mean:
    """A mean with its t interval, each bound one-sided at the level it was made with."""

    n: int
    value: float
    low: float
    high: float
    variance: float  # the sample variance (n - 1 in the denominator)


def mean_interval(n: int, total: float, squares: float, alpha: float = 0.025) -> Mean:
    """The mean of n values from their sum and sum of squares, with Student's t interval;
    (-inf, inf) with fewer than 2 values."""
    if n <= 0:
        return Mean(0, 0.0, -math.inf, math.inf, math.nan)
    mean = total / n
    if n < 2:
        return Mean(n, mean, -math.inf, math.inf, math.nan)
    variance = max(0.0, (squares - total * total / n) / (n - 1))
    half = float(scipy_stats.t.isf(alpha, n - 1)) * math.sqrt(variance / n)
    return Mean(n, mean, mean - half, mean + half, variance)


@dataclass(frozen=True)
class TTest:
    """A t-test: t > 0 means the candidate's absolute errors are larger. p_value:
    two-sided; p_worse: one-sided, the candidate worse."""

    t: float
    df: float
    p_value: float
    p_worse: float


def paired_t_test(n: int, total: float, squares: float) -> TTest:
    """The paired t-test of a = |e_candidate| - |e_baseline| from n, sum(a), sum(a^2) (as
    scipy.stats.ttest_rel); p-values 1 with fewer than 2 rows or no variation."""
    m = mean_interval(n, total, squares)
    if n < 2 or not m.variance > 0:
        return TTest(0.0, max(n - 1, 0), 1.0, 1.0)
    t = m.value / math.sqrt(m.variance / n)
    df = n - 1
    return TTest(t, df, float(2 * scipy_stats.t.sf(abs(t), df)), float(scipy_stats.t.sf(t, df)))


def welch_t_test(candidate: Mean, baseline: Mean) -> TTest:
    """Welch's t-test of two means with their sample variances (as
    scipy.stats.ttest_ind(equal_var=False)); p-values 1 when undefined."""
    if candidate.n < 2 or baseline.n < 2:
        return TTest(0.0, 0.0, 1.0, 1.0)
    a, b = candidate.variance / candidate.n, baseline.variance / baseline.n
    if not a + b > 0:
        return TTest(0.0, 0.0, 1.0, 1.0)
    t = (candidate.value - baseline.value) / math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (candidate.n - 1) + b * b / (baseline.n - 1))
    return TTest(t, df, float(2 * scipy_stats.t.sf(abs(t), df)), float(scipy_stats.t.sf(t, df)))


def welch_difference(
    candidate: Mean, baseline: Mean, alpha: float = 0.025
) -> tuple[float, float, float]:
    """(candidate - baseline mean, lower, upper): Welch's interval, each bound one-sided at
    `alpha`; (-inf, inf) when undefined."""
    diff = candidate.value - baseline.value
    if candidate.n < 2 or baseline.n < 2:
        return diff, -math.inf, math.inf
    a, b = candidate.variance / candidate.n, baseline.variance / baseline.n
    if not a + b > 0:
        return diff, diff, diff
    df = (a + b) ** 2 / (a * a / (candidate.n - 1) + b * b / (baseline.n - 1))
    half = float(scipy_stats.t.isf(alpha, df)) * math.sqrt(a + b)
    return diff, diff - half, diff + half


def rmse_interval(n: int, squares: float, fourths: float) -> tuple[float, float, float]:
    """(RMSE, lower, upper) from n, sum(e^2), sum(e^4): the square roots of the t interval
    of the mean squared error (bounds below 0 become 0); 95% two-sided."""
    m = mean_interval(n, squares, fourths)
    if n == 0:
        return 0.0, 0.0, math.inf
    return math.sqrt(max(m.value, 0.0)), math.sqrt(max(m.low, 0.0)), math.sqrt(max(m.high, 0.0))


# ---------------------------------------------------------------------- evidence and verdict
@dataclass
class ValueShadowCounts:
    """What a shadow comparison of a regressor counts (paired rows)."""

    tolerance: float | None = None  # |d| within it counts as agreeing (None: not judged)
    rows: int = 0
    failed: int = 0
    diff_sum: float = 0.0
    diff_squares: float = 0.0
    within: int = 0
    bins: dict[int, int] = field(default_factory=dict)
    # Rows with feedback: sums of |e| and e^2 of each, of a = |e_c| - |e_b| and a^2.
    feedback_rows: int = 0
    base_abs: float = 0.0
    cand_abs: float = 0.0
    base_squares: float = 0.0
    cand_squares: float = 0.0
    gap_sum: float = 0.0
    gap_squares: float = 0.0


@dataclass
class ValueVersionCounts(VersionCounts):
    """One regressor version's live errors for a canary comparison (first target)."""

    abs_sum: float = 0.0
    squares: float = 0.0
    fourths: float = 0.0

    def absolute(self, alpha: float = 0.025) -> Mean:
        # sum(|e|^2) = sum(e^2)
        return mean_interval(self.feedback_rows, self.abs_sum, self.squares, alpha)


def _percent(alpha: float) -> str:
    return f"{100 * alpha:.2g}%"


def _waiting(n: int, rules: PromotionRules, what: str) -> Verdict:
    return Verdict(
        "wait",
        f"not enough data yet: {n} of {rules.min_feedback_rows} {what}",
        None,
        rules.significance_level,
    )


def judge_value_shadow(counts: ValueShadowCounts, rules: PromotionRules) -> Verdict:
    """Promote, roll back or wait, for a regressor's shadow (see the module docstring)."""
    n = counts.feedback_rows
    look = look_of(n, rules)
    if look is None:
        return _waiting(n, rules, "paired rows with feedback")
    alpha = look_alpha(look, rules)
    gap = mean_interval(n, counts.gap_sum, counts.gap_squares, alpha)
    test = paired_t_test(n, counts.gap_sum, counts.gap_squares)
    base_mae = counts.base_abs / n
    margin = rules.max_error_increase * base_mae
    fail: list[str] = []
    if test.p_worse < alpha and gap.value > margin:
        fail.append(
            f"candidate worse at the {_percent(alpha)} level: MAE {gap.value:+.4g} "
            f"({_relative(gap.value, base_mae)}) on {n} paired rows "
            f"(paired t-test p = {test.p_worse:.2g})"
        )
    agreement = counts.within / counts.rows if counts.rows else 0.0
    judged = counts.tolerance is not None and counts.rows > 0
    if judged:
        _, high = wilson(counts.within, counts.rows, alpha)
        if high < rules.min_agreement:
            fail.append(
                f"{agreement:.3f} of the predictions within {counts.tolerance:.4g} of the "
                f"baseline's, below the minimum {rules.min_agreement:g} at the "
                f"{_percent(alpha)} level"
            )
    if fail:
        return Verdict("rollback", "; ".join(fail), look, alpha, tuple(fail))
    if gap.high < margin and (not judged or agreement >= rules.min_agreement):
        better = test.p_value < alpha and gap.value < 0
        text = (
            f"candidate better at the {_percent(alpha)} level"
            if better
            else "no significant difference; the candidate's MAE is at most "
            f"{100 * rules.max_error_increase:g}% above the baseline's at the "
            f"{_percent(alpha)} level"
        )
        return Verdict("promote", f"{text} ({n} paired rows, MAE {gap.value:+.4g})", look, alpha)
    return Verdict(
        "wait",
        f"no significant difference yet ({n} paired rows, MAE {gap.value:+.4g}); judged again "
        f"at {rules.min_feedback_rows * 2 ** (look + 1)} rows",
        look,
        alpha,
    )


def judge_value_canary(
    candidate: ValueVersionCounts, baseline: ValueVersionCounts, rules: PromotionRules
) -> Verdict:
    """Promote, roll back or wait, for a regressor's canary (see the module docstring)."""
    n = min(candidate.feedback_rows, baseline.feedback_rows)
    look = look_of(n, rules)
    if look is None:
        return _waiting(
            n, rules, "rows with feedback of the version with fewer (each version needs them)"
        )
    alpha = look_alpha(look, rules)
    cand, base = candidate.absolute(alpha), baseline.absolute(alpha)
    test = welch_t_test(cand, base)
    diff, _, high = welch_difference(cand, base, alpha)
    margin = rules.max_error_increase * base.value
    fail: list[str] = []
    if test.p_worse < alpha and diff > margin:
        fail.append(
            f"candidate worse at the {_percent(alpha)} level: MAE {diff:+.4g} "
            f"({_relative(diff, base.value)}) (Welch t-test p = {test.p_worse:.2g})"
        )
    slow = p99_too_slow(candidate, baseline, rules)
    if slow:
        fail.append(slow)
    if fail:
        return Verdict("rollback", "; ".join(fail), look, alpha, tuple(fail))
    if high < margin:
        better = test.p_value < alpha and diff < 0
        text = (
            f"candidate better at the {_percent(alpha)} level"
            if better
            else "no significant difference; the candidate's MAE is at most "
            f"{100 * rules.max_error_increase:g}% above the baseline's at the "
            f"{_percent(alpha)} level"
        )
        return Verdict("promote", f"{text} (MAE {diff:+.4g})", look, alpha)
    return Verdict(
        "wait",
        f"no significant difference yet (MAE {diff:+.4g}); judged again at "
        f"{rules.min_feedback_rows * 2 ** (look + 1)} rows with feedback per version",
        look,
        alpha,
    )


def _relative(diff: float, base: float) -> str:
    return f"{100 * diff / base:+.1f}%" if base > 0 else "baseline MAE 0"
