"""The one model abstraction every framework runtime implements.

A runtime turns a batch of model inputs (already featurised: numbers, pixels or token ids) into
an `(N, C)` array of class probabilities. It knows nothing of HTTP, batching or JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from app.schemas.card import ModelCard


class Model(ABC):
    """A loaded model: `load()` once, then `predict(batch)` from one worker thread."""

    def __init__(self, card: ModelCard, folder: Path) -> None:
        self.card = card
        self.folder = folder

    @property
    def device(self) -> str:
        """Where the forward pass runs, e.g. "cpu" or "gpu:0 (NVIDIA H100)"."""
        return "cpu"

    @abstractmethod
    def load(self) -> None:
        """Read the artifact from `folder` (its hashes were verified before)."""

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities `(N, C)` float64 for the N rows of `batch`, in order, one
        column per label of the card."""

    def predict_embedded(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`predict`, with the network's penultimate-layer features `(N, D)` float64 for the
        out-of-domain score, or None where the runtime has none (the default)."""
        return self.predict(batch), None

    def warmup(self, batch: np.ndarray) -> None:
        """Run every shape the server will use once, so no request pays for compilation.

        `batch` holds one valid row per input; runtimes with shape buckets widen it.
        """
        self.predict(batch)


def binary_to_two_columns(probabilities: np.ndarray) -> np.ndarray:
    """A sigmoid output (N, 1) becomes (N, 2): P(label 0), P(label 1)."""
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        positive = probabilities[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)
    return probabilities
