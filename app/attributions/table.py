"""Mixed-type tables and raw text: model-agnostic Shapley values with a bounded cost.

The game for one instance: a coalition keeps the instance's value for the players in it and
a reference value for the others, and is worth the model's output for the explained class (a
classifier's probability) or target (a regressor's value). Players are the features of a
table (a reference row built from the card: the mean of the card's examples for numbers,
the most common category for strings, false for booleans, missing where allowed and nothing
else is known) or the words of a text (absent: dropped). Above `MAX_PLAYERS`, neighbouring
features or words are grouped so one explanation costs at most
2 * permutations * (MAX_PLAYERS - 1) model rows, whatever the width.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from app.attributions.base import Check, Explainer, completeness, prediction
from app.attributions.shapley import exact_shapley, permutation_shapley
from app.schemas.card import Feature, ModelCard

MAX_PLAYERS = 32
EXACT_MAX_PLAYERS = 10

Outputs = Callable[[list[Any]], np.ndarray]  # rows -> (N, C), through the adapter


def groups(count: int, limit: int = MAX_PLAYERS) -> list[list[int]]:
    """`count` items in at most `limit` groups of neighbours, sizes differing by at most 1."""
    players = min(count, limit)
    bounds = np.linspace(0, count, players + 1).round().astype(int)
    return [list(range(bounds[i], bounds[i + 1])) for i in range(players)]


def _shapley(
    value: Callable[[np.ndarray], np.ndarray], n: int, permutations: int, check: Check
) -> tuple[np.ndarray, float, float]:
    if n <= EXACT_MAX_PLAYERS:
        return exact_shapley(value, n)
    return permutation_shapley(
        value, n, permutations=permutations, check=check, chunk_permutations=8
    )


def _method(players: str, n: int, permutations: int) -> dict[str, Any]:
    exact = n <= EXACT_MAX_PLAYERS
    return {
        "name": "exact Shapley values"
        if exact
        else "Shapley values by antithetic permutation sampling",
        "players": players,
        **({"coalitions": 2**n} if exact else {"permutations": 2 * permutations, "seed": 0}),
        "value_function": "the model's output for the explained class or target",
    }


class TableShapley(Explainer):
    """Shapley values per feature (or group of neighbouring features) of a mixed table."""

    def __init__(
        self, card: ModelCard, features: list[Feature], outputs: Outputs, permutations: int = 32
    ) -> None:
        super().__init__(card)
        self.outputs = outputs
        self.permutations = permutations
        self.features = features
        self.names = [f.name for f in self.features]
        self.reference = self._reference()

    def _reference(self) -> tuple[Any, ...]:
        seen = [e.instance for e in self.card.examples if isinstance(e.instance, dict)]
        values: list[Any] = []
        for feature in self.features:
            known: list[Any] = [
                row[feature.name] for row in seen if row.get(feature.name) is not None
            ]
            if feature.dtype == "number":
                numbers = [float(v) for v in known]
                values.append(
                    float(np.mean(numbers)) if numbers else (None if feature.missing else 0.0)
                )
            elif feature.dtype == "string":
                common = Counter(map(str, known)).most_common(1)
                fallback = feature.categories[0] if feature.categories else None
                values.append(common[0][0] if common else fallback)
            else:
                values.append(False)
        return tuple(values)

    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        x = tuple(row)
        target, result = prediction(self.card, list(self.outputs([x])[0]))
        parts = groups(len(x))

        def value(masks: np.ndarray) -> np.ndarray:
            rows = []
            for mask in masks:
                keep = np.zeros(len(x), dtype=bool)
                for player, present in enumerate(mask):
                    if present:
                        keep[parts[player]] = True
                rows.append(tuple(x[i] if keep[i] else self.reference[i] for i in range(len(x))))
            return np.asarray(self.outputs(rows), dtype=np.float64)[:, target]

        phi, f_reference, f_x = _shapley(value, len(parts), self.permutations, check)
        names = ["+".join(self.names[i] for i in part) for part in parts]
        result.update(
            {
                "explained_label": self.card.labels[target],
                "method": _method(
                    "features" if len(parts) == len(x) else "groups of neighbouring features",
                    len(parts),
                    self.permutations,
                ),
                "attributions": dict(zip(names, phi.tolist(), strict=True)),
                "baseline": {
                    "kind": "a reference row from the card's examples (mean, most common category)",
                    "features": dict(zip(self.names, self.reference, strict=True)),
                },
                "completeness": completeness(phi, f_x, f_reference),
            }
        )
        return result


class WordShapley(Explainer):
    """Shapley values per word (or run of neighbouring words) of a raw text."""

    def __init__(self, card: ModelCard, outputs: Outputs, permutations: int = 16) -> None:
        super().__init__(card)
        self.outputs = outputs
        self.permutations = permutations

    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        text = str(row)
        words = text.split()
        target, result = prediction(self.card, list(self.outputs([text])[0]))
        parts = groups(len(words)) if words else []

        def value(masks: np.ndarray) -> np.ndarray:
            texts = [
                " ".join(
                    w
                    for player, present in enumerate(mask)
                    if present
                    for w in (words[i] for i in parts[player])
                )
                for mask in masks
            ]
            return np.asarray(self.outputs(texts), dtype=np.float64)[:, target]

        if not parts:
            raise ValueError("an empty text has no words to explain")
        phi, f_empty, f_x = _shapley(value, len(parts), self.permutations, check)
        result.update(
            {
                "explained_label": self.card.labels[target],
                "method": _method(
                    "words" if len(parts) == len(words) else "runs of neighbouring words",
                    len(parts),
                    self.permutations,
                ),
                "attributions": [
                    {"text": " ".join(words[i] for i in part), "attribution": float(a)}
                    for part, a in zip(parts, phi, strict=True)
                ],
                "baseline": {"kind": "the empty text"},
                "completeness": completeness(phi, f_x, f_empty),
            }
        )
        return result
