"""The statistics of comparing a candidate version with a baseline, and the verdict.

Pure functions over counts (no database, no HTTP): `app.monitoring.evidence` gathers the
counts from the prediction store, `app.monitoring.promotion` acts on the verdict.

Shadow (paired: both versions saw the same rows):
- agreement: rows both label alike / rows, with a Wilson score interval;
- on rows with feedback, the 2x2 table (baseline right?, candidate right?). McNemar's test
  uses only the discordant rows: b (baseline right, candidate wrong) and c (the reverse);
  under "equally accurate" b ~ Binomial(b + c, 1/2). Exact binomial p-values
  (scipy.stats.binomtest): McNemar's exact test (McNemar 1947; Fagerland et al. 2013 advise
  the exact or mid-p form over the chi-squared approximation for small b + c).
- the difference of accuracies (candidate - baseline) = (c - b) / n, with a Wald interval
  after adding 1/2 to every cell (Agresti & Min 2005), so zero discordant rows do not give a
  zero-width interval.

Canary (unpaired: each version saw its own rows):
- each accuracy with its Wilson interval; the difference with Newcombe's hybrid score
  interval (Newcombe 1998, method 10); the pooled two-proportion z-test (equal to the
  chi-squared test of the 2x2 table without continuity correction).

The decision (`judge`) is a group-sequential design with a Bonferroni split of the
significance level alpha: the evidence is judged at most once per "look" k = 0, 1, 2, ...,
where look k is reached at min_feedback_rows * 2**k rows with feedback, and look k spends
alpha / 2**(k + 1). Whatever the number of looks, the chance of a false decision stays below
alpha (sum of alpha / 2**(k+1) < alpha), where checking at every poll would let it grow
without bound. At a look:
- rollback when the candidate is worse at the look's level (one-sided exact McNemar for a
  shadow, one-sided z-test for a canary) AND it lost more than max_accuracy_drop; or, for a
  shadow, when the agreement's upper bound is below min_agreement; or, for a canary, when
  its p99 latency exceeds the baseline's by more than max_p99_increase;
- promote when the lower confidence bound of (candidate - baseline) at the look's level is
  above -max_accuracy_drop (non-inferiority), the agreement (shadow) is at least
  min_agreement and the p99 latency (canary) is within bounds;
- otherwise wait for the next look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy import stats as scipy_stats

from app.monitoring.stats import wilson_interval
from app.repository.rules import PromotionRules

# Latency samples each version needs before the p99 rule applies.
MIN_LATENCY_SAMPLES = 50


def z_for(alpha: float) -> float:
    """The standard normal quantile z with P(Z > z) = alpha (one-sided)."""
    return float(scipy_stats.norm.isf(alpha))


def wilson(correct: int, total: int, alpha: float = 0.025) -> tuple[float, float]:
    """Wilson score interval of correct/total, each bound one-sided at `alpha` (0.025: the
    95% two-sided interval); (0, 1) without data."""
    return wilson_interval(correct, total, z_for(alpha))


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on the discordant rows of a paired 2x2 table.

    b: baseline right and candidate wrong; c: candidate right and baseline wrong.
    p_value: two-sided; p_worse: one-sided, the candidate less accurate.
    """

    b: int
    c: int
    p_value: float
    p_worse: float


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's exact (binomial) test; p-values 1 when there is no discordant row."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, 1.0)
    two_sided = float(scipy_stats.binomtest(b, n, 0.5).pvalue)
    worse = float(scipy_stats.binomtest(b, n, 0.5, alternative="greater").pvalue)
    return McNemar(b, c, min(1.0, two_sided), worse)


def paired_difference(
    both: int, b: int, c: int, neither: int, alpha: float = 0.025
) -> tuple[float, float, float]:
    """(candidate - baseline accuracy, lower, upper) on paired rows: Wald with 1/2 added to
    each cell (Agresti & Min 2005); each bound one-sided at `alpha`."""
    n = both + b + c + neither
    if n == 0:
        return 0.0, -1.0, 1.0
    diff = (c - b) / n
    b_, c_, n_ = b + 0.5, c + 0.5, n + 2.0
    adjusted = (c_ - b_) / n_
    variance = ((b_ + c_) / n_ - adjusted**2) / n_
    half = z_for(alpha) * math.sqrt(max(variance, 0.0))
    return diff, max(-1.0, adjusted - half), min(1.0, adjusted + half)


@dataclass(frozen=True)
class TwoProportions:
    """The pooled two-proportion z-test of candidate vs baseline accuracy (unpaired).

    z > 0: the candidate is more accurate. p_value: two-sided; p_worse: one-sided, the
    candidate less accurate."""

    z: float
    p_value: float
    p_worse: float


def two_proportion_test(
    candidate_correct: int, candidate_rows: int, baseline_correct: int, baseline_rows: int
) -> TwoProportions:
    """z-test with the pooled proportion; p-values 1 when a side has no rows or nothing
    varies (every row right, or every row wrong)."""
    if candidate_rows <= 0 or baseline_rows <= 0:
        return TwoProportions(0.0, 1.0, 1.0)
    p1, p2 = candidate_correct / candidate_rows, baseline_correct / baseline_rows
    pooled = (candidate_correct + baseline_correct) / (candidate_rows + baseline_rows)
    se = math.sqrt(pooled * (1 - pooled) * (1 / candidate_rows + 1 / baseline_rows))
    if se == 0:
        return TwoProportions(0.0, 1.0, 1.0)
    z = (p1 - p2) / se
    return TwoProportions(z, float(2 * scipy_stats.norm.sf(abs(z))), float(scipy_stats.norm.cdf(z)))


def newcombe_difference(
    candidate_correct: int,
    candidate_rows: int,
    baseline_correct: int,
    baseline_rows: int,
    alpha: float = 0.025,
) -> tuple[float, float, float]:
    """(candidate - baseline accuracy, lower, upper): Newcombe's hybrid score interval from
    the two Wilson intervals; each bound one-sided at `alpha`."""
    if candidate_rows <= 0 or baseline_rows <= 0:
        return 0.0, -1.0, 1.0
    p1, p2 = candidate_correct / candidate_rows, baseline_correct / baseline_rows
    l1, u1 = wilson(candidate_correct, candidate_rows, alpha)
    l2, u2 = wilson(baseline_correct, baseline_rows, alpha)
    diff = p1 - p2
    lower = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, lower, upper


# ---------------------------------------------------------------------- evidence and verdict
@dataclass
class ShadowCounts:
    """What a shadow comparison counts (paired rows)."""

    rows: int = 0  # rows both versions answered
    agreed: int = 0
    # The disagreement matrix (agreements on its diagonal): (baseline label, candidate
    # label) -> rows.
    matrix: dict[tuple[str, str], int] = field(default_factory=dict)
    # Rows with feedback, by (baseline right, candidate right).
    both_right: int = 0
    baseline_only: int = 0  # b
    candidate_only: int = 0  # c
    neither: int = 0
    candidate_failed: int = 0  # copies the shadow could not answer (dropped, failed)

    @property
    def feedback_rows(self) -> int:
        return self.both_right + self.baseline_only + self.candidate_only + self.neither


@dataclass
class VersionCounts:
    """One version's live figures for a canary comparison."""

    rows: int = 0  # predicted rows in the comparison window
    feedback_rows: int = 0
    correct: int = 0
    requests: int = 0  # this replica's requests, errors and latency (since it started)
    errors: int = 0
    p99_ms: float | None = None
    latency_samples: int = 0


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging the evidence.

    action: "promote", "rollback" or "wait"; look: the look judged (None: no look reached);
    alpha: the significance level this look spends; text: the plain-language verdict."""

    action: str
    text: str
    look: int | None
    alpha: float
    reasons: tuple[str, ...] = ()


def look_of(rows: int, rules: PromotionRules) -> int | None:
    """The look reached with `rows` rows with feedback (None: fewer than the minimum)."""
    if rows < rules.min_feedback_rows:
        return None
    return (rows // rules.min_feedback_rows).bit_length() - 1


def look_alpha(look: int, rules: PromotionRules) -> float:
    """The significance level look `look` spends (alpha / 2**(look + 1))."""
    alpha: float = rules.significance_level / 2 ** (look + 1)
    return alpha


def _percent(alpha: float) -> str:
    return f"{100 * alpha:.2g}%"


def judge_shadow(counts: ShadowCounts, rules: PromotionRules) -> Verdict:
    """Promote, roll back or wait, for a shadow (see the module docstring)."""
    n = counts.feedback_rows
    look = look_of(n, rules)
    if look is None:
        return Verdict(
            "wait",
            f"not enough data yet: {n} of {rules.min_feedback_rows} paired rows with feedback",
            None,
            rules.significance_level,
        )
    alpha = look_alpha(look, rules)
    b, c = counts.baseline_only, counts.candidate_only
    test = mcnemar(b, c)
    diff, lower, _ = paired_difference(counts.both_right, b, c, counts.neither, alpha)
    _, agreement_high = wilson(counts.agreed, counts.rows, alpha)
    agreement = counts.agreed / counts.rows if counts.rows else 0.0
    fail: list[str] = []
    if test.p_worse < alpha and -diff > rules.max_accuracy_drop:
        fail.append(
            f"candidate worse at the {_percent(alpha)} level: accuracy {diff:+.3f} on {n} "
            f"paired rows (McNemar p = {test.p_worse:.2g})"
        )
    if counts.rows and agreement_high < rules.min_agreement:
        fail.append(
            f"agreement {agreement:.3f} is below the minimum {rules.min_agreement:g} at the "
            f"{_percent(alpha)} level"
        )
    if fail:
        return Verdict("rollback", "; ".join(fail), look, alpha, tuple(fail))
    if lower > -rules.max_accuracy_drop and agreement >= rules.min_agreement:
        better = test.p_value < alpha and diff > 0
        text = (
            f"candidate better at the {_percent(alpha)} level"
            if better
            else "no significant "
            f"difference; the candidate loses at most {rules.max_accuracy_drop:g} accuracy at "
            f"the {_percent(alpha)} level"
        )
        return Verdict("promote", f"{text} ({n} paired rows, accuracy {diff:+.3f})", look, alpha)
    return Verdict(
        "wait",
        f"no significant difference yet ({n} paired rows, accuracy {diff:+.3f}); judged "
        f"again at {rules.min_feedback_rows * 2 ** (look + 1)} rows",
        look,
        alpha,
    )


def judge_canary(
    candidate: VersionCounts, baseline: VersionCounts, rules: PromotionRules
) -> Verdict:
    """Promote, roll back or wait, for a canary (see the module docstring)."""
    n = min(candidate.feedback_rows, baseline.feedback_rows)
    look = look_of(n, rules)
    if look is None:
        return Verdict(
            "wait",
            f"not enough data yet: {candidate.feedback_rows} (candidate) and "
            f"{baseline.feedback_rows} (baseline) rows with feedback, "
            f"{rules.min_feedback_rows} each needed",
            None,
            rules.significance_level,
        )
    alpha = look_alpha(look, rules)
    test = two_proportion_test(
        candidate.correct, candidate.feedback_rows, baseline.correct, baseline.feedback_rows
    )
    diff, lower, _ = newcombe_difference(
        candidate.correct,
        candidate.feedback_rows,
        baseline.correct,
        baseline.feedback_rows,
        alpha,
    )
    slow = p99_too_slow(candidate, baseline, rules)
    fail: list[str] = []
    if test.p_worse < alpha and -diff > rules.max_accuracy_drop:
        fail.append(
            f"candidate worse at the {_percent(alpha)} level: accuracy {diff:+.3f} "
            f"(z-test p = {test.p_worse:.2g})"
        )
    if slow:
        fail.append(slow)
    if fail:
        return Verdict("rollback", "; ".join(fail), look, alpha, tuple(fail))
    if lower > -rules.max_accuracy_drop:
        better = test.p_value < alpha and diff > 0
        text = (
            f"candidate better at the {_percent(alpha)} level"
            if better
            else "no significant "
            f"difference; the candidate loses at most {rules.max_accuracy_drop:g} accuracy at "
            f"the {_percent(alpha)} level"
        )
        return Verdict("promote", f"{text} (accuracy {diff:+.3f})", look, alpha)
    return Verdict(
        "wait",
        f"no significant difference yet (accuracy {diff:+.3f}); judged again at "
        f"{rules.min_feedback_rows * 2 ** (look + 1)} rows with feedback per version",
        look,
        alpha,
    )


def p99_too_slow(
    candidate: VersionCounts, baseline: VersionCounts, rules: PromotionRules
) -> str | None:
    """Why the candidate's p99 latency fails the rule, or None (also when either version has
    fewer than MIN_LATENCY_SAMPLES requests)."""
    if (
        candidate.p99_ms is None
        or baseline.p99_ms is None
        or min(candidate.latency_samples, baseline.latency_samples) < MIN_LATENCY_SAMPLES
    ):
        return None
    limit = baseline.p99_ms * (1 + rules.max_p99_increase)
    if candidate.p99_ms > limit:
        return (
            f"p99 latency {candidate.p99_ms:.1f} ms exceeds the baseline's {baseline.p99_ms:.1f} "
            f"ms by more than {100 * rules.max_p99_increase:g}%"
        )
    return None


def interval(low: float, high: float) -> list[float]:
    """An interval, rounded for JSON."""
    return [round(low, 6), round(high, 6)]


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A verdict as the comparison's JSON shows it."""
    return {
        "action": verdict.action,
        "text": verdict.text,
        "look": verdict.look,
        "alpha": verdict.alpha,
    }
