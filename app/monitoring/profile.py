"""Monitoring statistics of model inputs, and the reference profile kept in each artifact.

Each input kind (`app.kinds`) says what it measures of a batch of its rows (the serving rows
it makes: tabular float vectors, 28x28 grey-level grids, review texts), for training and
serving alike, so the reference and the live windows are measured the same way (for example
an image's `ink_mass`, `mean_level` and `spread`; a review's `token_count` and `oov_share`);
every model adds `predicted_label` (categorical, over the card's labels).

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
from pydantic import BaseModel, Field

from app.kinds import kind_of
from app.kinds.image import image_statistics
from app.kinds.table import MISSING_CATEGORY, OTHER_CATEGORY, feature_categories, table_statistics
from app.schemas.card import ModelCard

__all__ = [  # with the kinds' statistics helpers, which the monitor and the tests read here
    "MISSING_CATEGORY",
    "OTHER_CATEGORY",
    "PREDICTED_LABEL",
    "PROFILE_FILE",
    "PSI_BINS",
    "REFERENCE_SAMPLE_SIZE",
    "CategoricalReference",
    "ContinuousReference",
    "Profile",
    "StatisticsComputer",
    "build_profile",
    "category_names",
    "continuous_reference",
    "feature_categories",
    "image_statistics",
    "table_statistics",
]

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
    """The monitoring statistics of one model version's rows: its input kind's
    (`app.kinds`, `InputAdapter.statistics`), see the module docstring."""

    def __init__(self, card: ModelCard, folder: Path | None = None) -> None:
        self.card = card
        self._kind = kind_of(card).statistics(card, folder)

    @property
    def names(self) -> list[str]:
        """The input statistics' names, in a stable order (the predicted label excluded)."""
        return self._kind.names

    def categories(self, index: int) -> list[str] | None:
        """The categories input statistic `index` is counted over (None: continuous)."""
        return self._kind.categories(index)

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        """The featurised rows in compact form, for the store: tabular float32 values, image
        grey levels as uint8 (28x28 = 784 bytes), text the vocabulary ids of its words as int32
        (1 = unknown; the model's n-gram input follows from them)."""
        return self._kind.compact(rows)

    def measure(self, rows: Sequence[Any]) -> tuple[np.ndarray, list[bytes]]:
        """`compute` and `compact` together (a text is tokenised once for both)."""
        return self._kind.measure(rows)

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        """Rows -> an (N, len(names)) float64 array of statistics."""
        return self._kind.compute(rows)


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
    for index, name in enumerate(computer.names):
        values = stats[:, index]
        categories = computer.categories(index)
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
