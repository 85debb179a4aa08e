"""The statistics behind the monitoring report: drift tests and the accuracy interval.

Drift of one statistic, a recent window against the training reference (`profile.json`):
- PSI (population stability index) over the reference's decile bins (continuous) or its
  categories: sum((w - r) * ln(w / r)), shares smoothed by `PSI_EPSILON` so an empty bin
  stays finite. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a real shift.
- a p-value: two-sample Kolmogorov-Smirnov (continuous; scipy.stats.ks_2samp against the
  reference sample) or chi-squared goodness of fit (categorical; scipy.stats.chisquare against
  the reference shares).
- flag: p-value below `alpha / number of statistics` (Bonferroni: a model with 21
  statistics is not 21 times as likely to raise a false alarm) AND PSI at least
  `psi_threshold`. The p-value alone flags tiny, harmless shifts once windows are large; PSI
  alone flags noise in small windows; both together flag shifts that are real and large.

Live accuracy against the card: Wilson score interval at 95% (z = 1.96) on correct/rows with
feedback; `below_held_out` when the interval's upper bound is below the card's held-out
accuracy (the live accuracy is significantly lower, not just lower by chance). Wilson rather
than the normal approximation: it stays inside 0..1 and honest for small counts and for
accuracies near 1, which is where good models live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from app.monitoring.profile import CategoricalReference, ContinuousReference

PSI_EPSILON = 1e-4
WILSON_Z = 1.959963984540054  # 95%


@dataclass(frozen=True)
class DriftResult:
    """One statistic's drift over one window."""

    statistic: str
    kind: str
    test: str
    score: float
    p_value: float
    window_rows: int
    flag: bool


def psi(window_shares: np.ndarray, reference_shares: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    w = np.clip(window_shares, PSI_EPSILON, None)
    r = np.clip(reference_shares, PSI_EPSILON, None)
    w, r = w / w.sum(), r / r.sum()
    return float(np.sum((w - r) * np.log(w / r)))


def continuous_drift(
    name: str,
    values: np.ndarray,
    reference: ContinuousReference,
    *,
    alpha: float,
    psi_threshold: float,
) -> DriftResult:
    """PSI + KS of a window of one continuous statistic."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(reference.bin_edges)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    score = psi(counts / max(1, len(values)), np.asarray(reference.bin_shares))
    p_value = float(scipy_stats.ks_2samp(values, np.asarray(reference.sample)).pvalue)
    return DriftResult(
        name,
        "continuous",
        "ks",
        score,
        p_value,
        len(values),
        bool(p_value < alpha and score >= psi_threshold),
    )


def categorical_drift(
    name: str,
    values: list[str],
    reference: CategoricalReference,
    *,
    alpha: float,
    psi_threshold: float,
) -> DriftResult:
    """PSI + chi-squared of a window of one categorical statistic."""
    index = {category: i for i, category in enumerate(reference.categories)}
    counts = np.zeros(len(reference.categories))
    for value in values:
        if value in index:
            counts[index[value]] += 1
    n = counts.sum()
    shares = np.clip(np.asarray(reference.shares, dtype=np.float64), PSI_EPSILON, None)
    shares = shares / shares.sum()
    score = psi(counts / max(1.0, n), shares)
    p_value = float(scipy_stats.chisquare(counts, shares * n).pvalue) if n else 1.0
    if math.isnan(p_value):
        p_value = 1.0
    return DriftResult(
        name,
        "categorical",
        "chi-squared",
        score,
        p_value,
        int(n),
        bool(p_value < alpha and score >= psi_threshold),
    )


def wilson_interval(correct: int, total: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there is no data."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
