"""Monitoring statistics of model inputs, and the reference profile kept in each artifact.

One function computes the statistics of a batch of rows (the serving rows the adapters make:
tabular float vectors, 28x28 grey-level grids, review texts) for training and serving alike,
so the reference and the live windows are measured the same way:

- tabular: each feature, as is;
- image: `ink_mass` (share of pixels brighter than half the maximum), `mean_level` (mean grey
  level over the maximum, 0-1), `spread` (the ink's radius of gyration, in pixels);
- text: `token_count` (words after tokenisation) and `oov_share` (share of those words that
  are not in the model's vocabulary);
- every model: `predicted_label` (categorical, over the card's labels).

The profile (`profile.json`, listed and hashed in the card like every artifact) holds, per
statistic, what the drift tests need: for continuous statistics the decile bin edges and the
reference share per bin (PSI) and a sorted reference sample of at most
`REFERENCE_SAMPLE_SIZE` values (quantiles of the training data: the KS test); for the
predicted label, the share of each label on the training data (PSI and chi-squared).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, Field

from app.preprocessing.text import UNKNOWN_ID, EncodedText, TextVectorizer, tokenize_bytes
from app.schemas.card import (
    Feature,
    ImageInput,
    ModelCard,
    RawTextInput,
    TableInput,
    TabularInput,
    TextInput,
)

PROFILE_FILE = "profile.json"
PREDICTED_LABEL = "predicted_label"
PSI_BINS = 10
REFERENCE_SAMPLE_SIZE = 2000


class ContinuousReference(BaseModel):
    """A continuous statistic on the training data."""

    kind: Literal["continuous"] = "continuous"
    bin_edges: list[float] = Field(description="Inner bin edges (bins are right-open).")
    bin_shares: list[float] = Field(description="Share of training rows per bin.")
    sample: list[float] = Field(description="Sorted reference values (quantiles if many).")
    mean: float
    std: float


class CategoricalReference(BaseModel):
    """A categorical statistic on the training data."""

    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    shares: list[float]


class Profile(BaseModel):
    """The reference profile of one model version (`profile.json`)."""

    profile_version: Literal[1] = 1
    rows: int = Field(ge=1, description="Training rows the profile was computed on.")
    statistics: dict[str, ContinuousReference | CategoricalReference]

    @classmethod
    def read(cls, folder: Path) -> Profile:
        """Parse `folder/profile.json` (raises OSError or pydantic.ValidationError)."""
        return cls.model_validate_json((folder / PROFILE_FILE).read_bytes())

    def write(self, folder: Path) -> Path:
        """Write `folder/profile.json`; returns its path."""
        path = folder / PROFILE_FILE
        path.write_text(json.dumps(self.model_dump(mode="json")) + "\n", encoding="utf-8")
        return path


class StatisticsComputer:
    """The monitoring statistics of one model version's rows (see the module docstring)."""

    def __init__(self, card: ModelCard, folder: Path | None = None) -> None:
        self.card = card
        self.vectorizer: TextVectorizer | None = None
        spec = card.input
        if isinstance(spec, TextInput):
            if folder is None:
                raise ValueError("text statistics need the model folder (its vocabulary)")
            self.vectorizer = TextVectorizer.load(
                folder / spec.vocabulary_file, spec.sequence_length
            )
            # Word -> id (unigrams; a bigram counts only when both its words are known, so the
            # model's n-gram input follows from the word ids: they are its compact form).
            self._word_ids = {
                gram.encode(): index
                for index, gram in enumerate(self.vectorizer.vocabulary[1:], start=UNKNOWN_ID + 1)
                if " " not in gram
            }

    @property
    def names(self) -> list[str]:
        """The input statistics' names, in a stable order (the predicted label excluded)."""
        spec = self.card.input
        if isinstance(spec, TabularInput | TableInput):
            return [feature.name for feature in spec.features]
        if isinstance(spec, RawTextInput):
            return ["char_count", "word_count"]
        if isinstance(spec, ImageInput):
            return ["ink_mass", "mean_level", "spread"]
        return ["token_count", "oov_share"]

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        """The featurised rows in compact form, for the store: tabular float32 values, image
        grey levels as uint8 (28x28 = 784 bytes), text the vocabulary ids of its words as int32
        (1 = unknown; the model's n-gram input follows from them)."""
        spec = self.card.input
        if isinstance(spec, TabularInput):
            return [np.asarray(r, dtype=np.float32).tobytes() for r in rows]
        if isinstance(spec, TableInput):
            return [orjson.dumps(list(r)) for r in rows]
        if isinstance(spec, RawTextInput):
            return [str(r).encode("utf-8") for r in rows]
        if isinstance(spec, ImageInput):
            grids = np.stack([np.asarray(r, dtype=np.float32) for r in rows])
            levels = np.clip(np.rint(grids * (255.0 / spec.max_value)), 0, 255).astype(np.uint8)
            return [grid.tobytes() for grid in levels]
        return self.measure(rows)[1]

    def measure(self, rows: Sequence[Any]) -> tuple[np.ndarray, list[bytes]]:
        """`compute` and `compact` together (a text is tokenised once for both)."""
        if not isinstance(self.card.input, TextInput):
            return self.compute(rows), self.compact(rows)
        stats = np.empty((len(rows), 2))
        compact = []
        get = self._word_ids.get
        for index, row in enumerate(rows):
            # Served rows are EncodedText (the adapter's); training passes the texts themselves.
            text = row.text if isinstance(row, EncodedText) else str(row)
            ids = [get(word, UNKNOWN_ID) for word in tokenize_bytes(text)]
            stats[index, 0] = len(ids)
            stats[index, 1] = ids.count(UNKNOWN_ID) / len(ids) if ids else 0.0
            compact.append(np.array(ids, dtype=np.int32).tobytes())
        return stats, compact

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        """Rows -> an (N, len(names)) float64 array of statistics."""
        spec = self.card.input
        if isinstance(spec, TabularInput):
            return np.asarray(np.stack([np.asarray(r, dtype=np.float64) for r in rows]))
        if isinstance(spec, TableInput):
            return table_statistics(spec, rows)
        if isinstance(spec, RawTextInput):
            texts = [str(r) for r in rows]
            return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float64)
        if isinstance(spec, ImageInput):
            return image_statistics(np.stack([np.asarray(r) for r in rows]), spec.max_value)
        return self.measure(rows)[0]


def image_statistics(grids: np.ndarray, max_value: float) -> np.ndarray:
    """(N, H, W) grey levels 0..max_value -> (N, 3): ink mass, mean level, spread (pixels).

    Spread is the radius of gyration of the grey levels, sqrt(var(row) + var(column)) with
    the levels as weights, from the row and column sums (no (N, H, W) temporaries)."""
    scaled = np.asarray(grids, dtype=np.float32) / np.float32(max_value)
    n, height, width = scaled.shape
    flat = scaled.reshape(n, -1)
    ink_mass = (flat > 0.5).mean(axis=1, dtype=np.float64)
    mean_level = flat.mean(axis=1, dtype=np.float64)
    by_row = scaled.sum(axis=2, dtype=np.float64)  # (N, H)
    by_column = scaled.sum(axis=1, dtype=np.float64)  # (N, W)
    mass = by_row.sum(axis=1)
    safe = np.where(mass > 0, mass, 1.0)
    rows, columns = np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64)
    variance = (
        by_row @ rows**2 / safe
        - (by_row @ rows / safe) ** 2
        + by_column @ columns**2 / safe
        - (by_column @ columns / safe) ** 2
    )
    spread = np.sqrt(np.clip(variance, 0.0, None))
    spread[mass == 0] = 0.0
    return np.stack([ink_mass, mean_level, spread], axis=1)


OTHER_CATEGORY = "(other)"
MISSING_CATEGORY = "(missing)"


def feature_categories(feature: Feature) -> list[str] | None:
    """The categories a string or boolean feature's drift is counted over (None: a number):
    those the card records, then every other value, then missing."""
    if feature.dtype == "number":
        return None
    known = ["false", "true"] if feature.dtype == "boolean" else list(feature.categories or [])
    return [*known, OTHER_CATEGORY, MISSING_CATEGORY]


def table_statistics(spec: TableInput, rows: Sequence[Any]) -> np.ndarray:
    """(N, F) float64 of a table's rows: numbers as they are (NaN when missing); strings and
    booleans as the index of their category in `feature_categories` (the last two: another
    value, missing)."""
    out = np.empty((len(rows), len(spec.features)))
    for column, feature in enumerate(spec.features):
        categories = feature_categories(feature)
        index = {c: i for i, c in enumerate(categories or [])}
        for row_index, row in enumerate(rows):
            value = row[column]
            if categories is None:
                out[row_index, column] = np.nan if value is None else float(value)
            elif value is None:
                out[row_index, column] = len(categories) - 1
            else:
                text = str(value).lower() if feature.dtype == "boolean" else str(value)
                out[row_index, column] = index.get(text, len(categories) - 2)
    return out


def category_names(values: np.ndarray, reference: CategoricalReference) -> list[str]:
    """Category codes (see `table_statistics`) back to the reference's category names."""
    return [reference.categories[int(v)] for v in values]


def continuous_reference(values: np.ndarray) -> ContinuousReference:
    """The reference of one continuous statistic from its training values."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    inner = np.unique(np.quantile(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    shares = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
    if len(values) > REFERENCE_SAMPLE_SIZE:
        sample = np.quantile(
            values, (np.arange(REFERENCE_SAMPLE_SIZE) + 0.5) / REFERENCE_SAMPLE_SIZE
        )
    else:
        sample = values
    return ContinuousReference(
        bin_edges=[float(v) for v in inner],  # exact: values on an edge must not flip bins
        bin_shares=[float(v) for v in shares / len(values)],
        sample=[float(f"{v:.6g}") for v in sample],
        mean=float(values.mean()),
        std=float(values.std()),
    )


def build_profile(
    computer: StatisticsComputer, rows: Sequence[Any], predicted: Sequence[str]
) -> Profile:
    """The profile of training `rows` and the labels the model predicts for them."""
    stats = computer.compute(rows)
    statistics: dict[str, ContinuousReference | CategoricalReference] = {}
    spec = computer.card.input
    for index, name in enumerate(computer.names):
        values = stats[:, index]
        categories = (
            feature_categories(spec.features[index]) if isinstance(spec, TableInput) else None
        )
        if categories is not None:
            counts = np.bincount(values.astype(int), minlength=len(categories))
            statistics[name] = CategoricalReference(
                categories=categories, shares=[float(v) for v in counts / max(1, len(values))]
            )
        elif np.isfinite(values).any():
            statistics[name] = continuous_reference(values[np.isfinite(values)])
    labels = computer.card.labels
    counts = np.array([sum(p == label for p in predicted) for label in labels], dtype=np.float64)
    statistics[PREDICTED_LABEL] = CategoricalReference(
        categories=list(labels), shares=[float(v) for v in counts / max(1.0, counts.sum())]
    )
    return Profile(rows=len(rows), statistics=statistics)
