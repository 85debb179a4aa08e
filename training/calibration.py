"""Probabilities that mean what they say: reliability tables, ECE and temperature scaling.

A model is calibrated when, of the answers it gives with confidence p, a fraction p is right.
The expected calibration error (ECE) measures the gap: the top probability of each prediction
is binned into 15 equal-width bins over [0, 1], and the bins' |accuracy - mean confidence|
are averaged, weighted by how many predictions fall in each.
"""

from __future__ import annotations

import numpy as np

from app.schemas.card import ReliabilityBin

ECE_BINS = 15


def two_columns(probabilities: np.ndarray) -> np.ndarray:
    """(N, C) probabilities; a sigmoid's (N, 1) or (N,) becomes (N, 2)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        probabilities = probabilities[:, np.newaxis]
    if probabilities.shape[1] == 1:
        probabilities = np.hstack([1.0 - probabilities, probabilities])
    return probabilities


def reliability(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> tuple[float, list[ReliabilityBin]]:
    """(ECE, the reliability table) of predictions (N, C) against true class indices (N,).

    Bin k holds the predictions whose top probability lies in (k/bins, (k+1)/bins] (the first
    bin also takes 0); empty bins are listed with count 0.
    """
    probabilities = two_columns(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    table: list[ReliabilityBin] = []
    ece = 0.0
    for k in range(bins):
        members = index == k
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else 0.0
        accuracy = float(correct[members].mean()) if count else 0.0
        ece += count * abs(accuracy - mean_confidence)
        table.append(
            ReliabilityBin(
                low=round(k / bins, 6),
                high=round((k + 1) / bins, 6),
                count=count,
                mean_confidence=round(mean_confidence, 6),
                accuracy=round(accuracy, 6),
            )
        )
    return round(ece / max(1, len(confidence)), 6), table


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE of predictions (N, C) against true class indices (N,); see `reliability`."""
    return reliability(y_true, probabilities, bins)[0]


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T).

    Logits (N, C), or (N,) / (N, 1) for a sigmoid output (then softmax is the sigmoid). A
    one-parameter convex fit (in log T) on held-out data: it changes confidence, never the
    ranking, so accuracy is unchanged.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    y_true = np.asarray(y_true)
    if logits.ndim == 1 or logits.shape[1] == 1:
        z = logits.reshape(-1)
        sign = np.where(y_true == 1, 1.0, -1.0)

        def nll(log_t: float) -> float:
            return float(np.logaddexp(0.0, -sign * z / np.exp(log_t)).mean())

    else:
        rows = np.arange(len(y_true))

        def nll(log_t: float) -> float:
            scaled = logits / np.exp(log_t)
            top = scaled.max(axis=1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
            return float((log_norm - scaled[rows, y_true]).mean())

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))
