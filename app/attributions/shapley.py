"""Shapley values of a set-function game, exact or by antithetic permutation sampling.

The game: `value(masks)` maps an (M, n) boolean array of coalitions (True = the player is
present) to M numbers. Both estimators are *complete* by construction: the attributions sum to
value(all) - value(none) exactly (up to float rounding), because every permutation's marginal
contributions telescope to that difference, and the exact formula is a weighted sum of them.

Written here rather than taken from `shap` (which has ExactExplainer and PermutationExplainer):
see the README's "Explanations" section for the measured cost of that dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

ValueFunction = Callable[[np.ndarray], np.ndarray]


def exact_shapley(value: ValueFunction, n: int) -> tuple[np.ndarray, float, float]:
    """Exact Shapley values by enumerating all 2**n coalitions (n <= ~12).

    Returns (attributions (n,), value of the empty coalition, value of the full one).
    """
    masks = np.zeros((2**n, n), dtype=bool)
    for index in range(2**n):
        for player in range(n):
            masks[index, player] = bool(index >> player & 1)
    values = np.asarray(value(masks), dtype=np.float64)
    sizes = masks.sum(axis=1)
    weights = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    phi = np.zeros(n)
    index_of = {tuple(row): i for i, row in enumerate(masks.tolist())}
    for player in range(n):
        without = ~masks[:, player]
        for i in np.flatnonzero(without):
            row = masks[i].copy()
            row[player] = True
            phi[player] += weights[sizes[i]] * (values[index_of[tuple(row.tolist())]] - values[i])
    return phi, float(values[0]), float(values[-1])


def permutation_shapley(
    value: ValueFunction,
    n: int,
    *,
    permutations: int,
    seed: int = 0,
    check: Callable[[], None] | None = None,
    chunk_permutations: int = 1,
) -> tuple[np.ndarray, float, float]:
    """Shapley values estimated from `permutations` random orderings, each with its reverse
    (antithetic sampling halves the variance for nearly additive games), so 2 * permutations
    orderings in all, each costing n - 1 evaluations besides the two shared end points.

    Returns (attributions (n,), value of the empty coalition, value of the full one).
    `check()` is called between chunks of work (it raises to stop: a deadline).
    """
    rng = np.random.default_rng(seed)
    ends = np.asarray(value(np.array([np.zeros(n, bool), np.ones(n, bool)])), dtype=np.float64)
    empty, full = float(ends[0]), float(ends[1])
    if n == 1:
        return np.array([full - empty]), empty, full
    orders: list[np.ndarray] = []
    for _ in range(permutations):
        order = rng.permutation(n)
        orders.extend((order, order[::-1]))
    phi = np.zeros(n)
    step = max(1, 2 * chunk_permutations)
    for start in range(0, len(orders), step):
        if check is not None:
            check()
        batch = orders[start : start + step]
        masks = np.zeros((len(batch), n - 1, n), dtype=bool)
        for b, order in enumerate(batch):
            ranks = np.empty(n, dtype=np.int64)
            ranks[order] = np.arange(n)
            # Row k holds the first k + 1 players of the ordering.
            masks[b] = ranks[np.newaxis, :] <= np.arange(n - 1)[:, np.newaxis]
        inner = np.asarray(value(masks.reshape(-1, n)), dtype=np.float64).reshape(len(batch), -1)
        for b, order in enumerate(batch):
            path = np.concatenate([[empty], inner[b], [full]])
            phi[order] += np.diff(path)
    return phi / len(orders), empty, full
