"""What a comparison counts and judges, per task: labels (classifiers: agreement, accuracy,
McNemar, z-test) or values (regressors: differences, errors, t-tests). The task plug-in picks
one (`Task.comparer(LABELS, VALUES)`); nothing here asks which task a model has.

Each row's feedback is a vector of sums (`app.monitoring.tallies.Contributions`):
- labels, shadow: (both right, baseline only, candidate only, neither); canary: (1, right);
- values, shadow: (1, |e_b|, |e_c|, e_b^2, e_c^2, a, a^2) with a = |e_c| - |e_b|; canary:
  (1, |e|, e^2, e^4). Errors are on the first target (the prediction minus the truth).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from app.monitoring.comparison import (
    ShadowCounts,
    Verdict,
    VersionCounts,
    judge_canary,
    judge_shadow,
)
from app.monitoring.comparison_json import canary_json, shadow_json
from app.monitoring.comparison_values import (
    ValueShadowCounts,
    ValueVersionCounts,
    bin_of,
    judge_value_canary,
    judge_value_shadow,
)
from app.monitoring.comparison_values_json import value_canary_json, value_shadow_json
from app.monitoring.tallies import Vector
from app.repository.rules import PromotionRules


class LabelComparer:
    """Classifiers: a row is compared by its label."""

    shadow_width = 4
    version_width = 2

    def tolerance(self, rules: PromotionRules, card: Any) -> float | None:
        return None

    def shadow_counts(self, tolerance: float | None) -> ShadowCounts:
        return ShadowCounts()

    def shadow_row(self, counts: ShadowCounts, primary: str, shadow: str | None) -> None:
        if shadow is None:
            counts.candidate_failed += 1
            return
        counts.rows += 1
        counts.agreed += primary == shadow
        counts.matrix[(primary, shadow)] = counts.matrix.get((primary, shadow), 0) + 1

    def shadow_feedback(self, primary: str, shadow: str | None, truth: str) -> Vector | None:
        if shadow is None:
            return None
        base, cand = primary == truth, shadow == truth
        return (
            float(base and cand),
            float(base and not cand),
            float(cand and not base),
            float(not base and not cand),
        )

    def shadow_total(self, counts: ShadowCounts, total: list[float]) -> None:
        both, b, c, neither = (round(v) for v in total)
        counts.both_right, counts.baseline_only = both, b
        counts.candidate_only, counts.neither = c, neither

    def version_counts(self) -> VersionCounts:
        return VersionCounts()

    def version_feedback(self, predicted: str, outputs: bytes, truth: str) -> Vector | None:
        return (1.0, float(predicted == truth))

    def version_total(self, counts: VersionCounts, total: list[float]) -> None:
        counts.feedback_rows, counts.correct = round(total[0]), round(total[1])

    def judge_shadow(self, counts: ShadowCounts, rules: PromotionRules) -> Verdict:
        return judge_shadow(counts, rules)

    def judge_canary(
        self, candidate: VersionCounts, baseline: VersionCounts, rules: PromotionRules
    ) -> Verdict:
        return judge_canary(candidate, baseline, rules)

    def shadow_body(
        self,
        labels: list[str],
        counts: ShadowCounts,
        base_serving: VersionCounts,
        latencies: Any,
    ) -> dict[str, Any]:
        return shadow_json(labels, counts, base_serving, latencies)

    def canary_body(
        self, candidate: VersionCounts, baseline: VersionCounts, drift: dict[str, Any]
    ) -> dict[str, Any]:
        return canary_json(candidate, baseline, drift)


def _value(text: str) -> float:
    """A stored value: a shadow's `repr` of a float, or a truth (JSON: a list of numbers)."""
    parsed = json.loads(text)
    return float(parsed[0] if isinstance(parsed, list) else parsed)


class ValueComparer:
    """Regressors: a row is compared by its (first target's) predicted value."""

    shadow_width = 7
    version_width = 4

    def tolerance(self, rules: PromotionRules, card: Any) -> float | None:
        """The rule's, else the baseline's held-out MAE (None without either)."""
        if rules.value_tolerance is not None:
            return rules.value_tolerance
        mae = getattr(getattr(card, "metrics", None), "mae", None)
        return float(mae) if isinstance(mae, int | float) and mae > 0 else None

    def shadow_counts(self, tolerance: float | None) -> ValueShadowCounts:
        return ValueShadowCounts(tolerance=tolerance)

    def shadow_row(self, counts: ValueShadowCounts, primary: str, shadow: str | None) -> None:
        if shadow is None:
            counts.failed += 1
            return
        d = _value(shadow) - _value(primary)
        if not math.isfinite(d):
            counts.failed += 1
            return
        counts.rows += 1
        counts.diff_sum += d
        counts.diff_squares += d * d
        if counts.tolerance is not None and abs(d) <= counts.tolerance:
            counts.within += 1
        index = bin_of(d)
        counts.bins[index] = counts.bins.get(index, 0) + 1

    def shadow_feedback(self, primary: str, shadow: str | None, truth: str) -> Vector | None:
        if shadow is None:
            return None
        true = _value(truth)
        e_b, e_c = _value(primary) - true, _value(shadow) - true
        if not (math.isfinite(e_b) and math.isfinite(e_c)):
            return None
        gap = abs(e_c) - abs(e_b)
        return (1.0, abs(e_b), abs(e_c), e_b * e_b, e_c * e_c, gap, gap * gap)

    def shadow_total(self, counts: ValueShadowCounts, total: list[float]) -> None:
        counts.feedback_rows = round(total[0])
        counts.base_abs, counts.cand_abs = total[1], total[2]
        counts.base_squares, counts.cand_squares = total[3], total[4]
        counts.gap_sum, counts.gap_squares = total[5], total[6]

    def version_counts(self) -> ValueVersionCounts:
        return ValueVersionCounts()

    def version_feedback(self, predicted: str, outputs: bytes, truth: str) -> Vector | None:
        values = np.frombuffer(outputs, dtype=np.float32)
        if not len(values):
            return None
        e = float(values[0]) - _value(truth)
        if not math.isfinite(e):
            return None
        return (1.0, abs(e), e * e, e**4)

    def version_total(self, counts: ValueVersionCounts, total: list[float]) -> None:
        counts.feedback_rows = round(total[0])
        counts.abs_sum, counts.squares, counts.fourths = total[1], total[2], total[3]

    def judge_shadow(self, counts: ValueShadowCounts, rules: PromotionRules) -> Verdict:
        return judge_value_shadow(counts, rules)

    def judge_canary(
        self, candidate: ValueVersionCounts, baseline: ValueVersionCounts, rules: PromotionRules
    ) -> Verdict:
        return judge_value_canary(candidate, baseline, rules)

    def shadow_body(
        self,
        labels: list[str],
        counts: ValueShadowCounts,
        base_serving: VersionCounts,
        latencies: Any,
    ) -> dict[str, Any]:
        # The serving figures are the labels' (they do not depend on the task).
        serving = shadow_json(labels, ShadowCounts(), base_serving, latencies)["serving"]
        serving["candidate"]["failed"] = counts.failed
        answered = counts.rows + counts.failed
        serving["candidate"]["copies"] = answered
        serving["candidate"]["error_rate"] = (
            round(counts.failed / answered, 6) if answered else None
        )
        return {**value_shadow_json(counts), "serving": serving}

    def canary_body(
        self, candidate: ValueVersionCounts, baseline: ValueVersionCounts, drift: dict[str, Any]
    ) -> dict[str, Any]:
        serving = canary_json(candidate, baseline, drift)
        del serving["accuracy"]
        return {**value_canary_json(candidate, baseline), **serving}


LABELS = LabelComparer()
VALUES = ValueComparer()
