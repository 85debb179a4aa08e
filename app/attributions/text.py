"""Text: Shapley values of the n-grams the model saw, by antithetic permutation sampling.

The sentiment model reads a review as the set of distinct vocabulary ids of its words and word
pairs (see app.preprocessing.text), so those ids are the players: a coalition is the review
with only those n-grams, and the empty coalition is what an empty review becomes (the single
unknown-word id). The value is the probability of the predicted class. Every unknown word maps
to one id, `[UNK]`, so the unknown words share one attribution; the response lists them.

Model-agnostic (only forward passes, through the model's own compiled function), so it works
the same on every Keras backend; the sampling is complete by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.attributions.base import Check, Explainer, Predict, completeness, prediction
from app.attributions.shapley import permutation_shapley
from app.preprocessing.text import PADDING_ID, UNKNOWN, UNKNOWN_ID, TextVectorizer, tokenize
from app.schemas.card import ModelCard

VALUE_CHUNK_ROWS = 256  # model rows between deadline checks (and chances to yield)


class TextShapley(Explainer):
    """Permutation-sampled Shapley values over a review's n-grams (see the module docstring)."""

    def __init__(
        self,
        card: ModelCard,
        predict: Predict,
        vectorizer: TextVectorizer,
        *,
        permutations: int = 8,
    ) -> None:
        super().__init__(card)
        self.predict = predict
        self.vectorizer = vectorizer
        self.known = set(vectorizer.vocabulary[1:])
        self.permutations = permutations

    def _rows(self, players: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Coalitions (M, n) of the ids `players` -> model rows (M, sequence_length)."""
        rows = np.full((len(masks), self.vectorizer.sequence_length), PADDING_ID, np.int32)
        positions = np.cumsum(masks, axis=1) - 1
        which, player = np.nonzero(masks)
        rows[which, positions[which, player]] = players[player]
        rows[~masks.any(axis=1), 0] = UNKNOWN_ID  # an empty review, as encode("") gives
        return rows

    def explain(self, row: Any, check: Check) -> dict[str, Any]:
        """`row`: an EncodedText from the text adapter (ids as the model reads them, and the
        words they came from, to name the unknown ones)."""
        text = row.text
        ids = row.ids if row.ids is not None else self.vectorizer.encode(text)
        features = self.vectorizer.pad([ids])
        probabilities = self.predict(features)[0]
        target, result = prediction(self.card, probabilities)
        players = features[0][features[0] != PADDING_ID]

        def value(masks: np.ndarray) -> np.ndarray:
            values = []
            for start in range(0, len(masks), VALUE_CHUNK_ROWS):
                if start:
                    check()
                rows = self._rows(players, masks[start : start + VALUE_CHUNK_ROWS])
                values.append(np.asarray(self.predict(rows))[:, target])
            return np.concatenate(values).astype(np.float64)

        phi, f_baseline, f_x = permutation_shapley(
            value,
            len(players),
            permutations=self.permutations,
            check=check,
            chunk_permutations=1,
        )
        words = tokenize(text)
        unknown_words = list(dict.fromkeys(w for w in words if w not in self.known))
        tokens = self._tokens(players, phi, words, unknown_words)
        result.update(
            {
                "explained_label": self.card.labels[target],
                "method": {
                    "name": "Shapley values by antithetic permutation sampling",
                    "players": "the distinct words and word pairs the model looked up",
                    "permutations": 2 * self.permutations,
                    "seed": 0,
                    "value_function": "probability of the explained class for the review "
                    "holding only the n-grams of a coalition",
                },
                "baseline": {
                    "kind": "an empty review (only the unknown-word id)",
                    "probability": f_baseline,
                },
                "tokens": tokens,
                "unknown_words": unknown_words,
                "words": fold_into_words(words, self.known, tokens),
                "completeness": completeness(phi, f_x, f_baseline),
            }
        )
        return result

    def _tokens(
        self, players: np.ndarray, phi: np.ndarray, words: list[str], unknown_words: list[str]
    ) -> list[dict[str, Any]]:
        """One entry per player, in order of first appearance in the text."""
        vocabulary = self.vectorizer.vocabulary
        first: dict[str, int] = {}
        for position, word in enumerate(words):
            first.setdefault(word if word in self.known else UNKNOWN, position)
            if position + 1 < len(words):
                first.setdefault(f"{word} {words[position + 1]}", position)
        entries = []
        for player, attribution in zip(players.tolist(), phi.tolist(), strict=True):
            gram = vocabulary[player - 1]
            entry: dict[str, Any] = {
                "token": gram,
                "attribution": attribution,
                "unknown": gram == UNKNOWN,
            }
            if gram == UNKNOWN:
                entry["stands_for"] = unknown_words
            entries.append((first.get(gram, len(words)), entry))
        entries.sort(key=lambda item: item[0])
        return [entry for _, entry in entries]


def fold_into_words(
    words: list[str], known: set[str], tokens: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The text word by word, each with its share of the n-grams' attributions.

    A Shapley player is a distinct n-gram, counted once however often it occurs; a word pair
    covers two words. So each n-gram's attribution is shared equally among its occurrences,
    and a pair's share is split evenly between its two words; [UNK] goes to the unknown words.
    The words' attributions add up to the tokens' (completeness is kept), except for an
    n-gram the text does not contain, which the model cannot have looked up.
    """
    occurrences: dict[str, list[int]] = {}
    for position, word in enumerate(words):
        occurrences.setdefault(word if word in known else UNKNOWN, []).append(position)
        if position + 1 < len(words):
            occurrences.setdefault(f"{word} {words[position + 1]}", []).append(position)
    shares = [0.0] * len(words)
    for token in tokens:
        positions = occurrences.get(token["token"], [])
        width = 2 if " " in token["token"] else 1
        for position in positions:
            for offset in range(width):
                shares[position + offset] += token["attribution"] / len(positions) / width
    return [
        {"word": word, "attribution": share, "unknown": word not in known}
        for word, share in zip(words, shares, strict=True)
    ]
