"""The one model abstraction every framework runtime implements.

A runtime turns a batch of model inputs (already featurised: numbers, pixels or token ids) into
an `(N, C)` array of class probabilities. It knows nothing of HTTP, batching or JSON.

What explanations need from a model (the fitted estimator, the training mean, input gradients) is
asked of this class too, so no caller checks which runtime it holds: a runtime without the
capability answers None or raises `NoInputGradients`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.schemas.card import ModelCard
from app.tasks import Task, task_of

# (inputs (N, ...), class weights (C,)) -> (outputs (N, C), d sum(outputs * weights) / d input,
# shaped like the inputs); both float64.
Gradient = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class NoInputGradients(RuntimeError):
    """The model's runtime (or its backend) cannot differentiate its output with respect to
    its input; the message says which and is safe to show to a client."""


class UntrustedArtifact(ValueError):
    """An artifact holds objects outside the server's trust list, e.g. a skops file's types
    (message safe to show)."""


class UnservableArtifact(ValueError):
    """The artifact is sound but this server, as configured, cannot run it (e.g. a Keras model
    taking raw strings on a backend without string tensors); the message says what to change
    and is safe to show."""


class Model(ABC):
    """A loaded model: `load()` once, then `predict(batch)` from one worker thread."""

    def __init__(self, card: ModelCard, folder: Path) -> None:
        self.card = card
        self.folder = folder
        # What the card's task makes of the outputs, looked up once rather than per batch.
        self.task: Task = task_of(card)

    @property
    def estimator(self) -> Any:
        """The fitted estimator object (scikit-learn's), for explanations that look inside
        it; None for runtimes without one, or before load()."""
        return None

    def input_mean(self) -> np.ndarray | None:
        """The training data's mean input row `(F,)` float64, where the artifact holds it
        (a normalisation layer fitted on the training data), for explanation baselines; None
        where it does not (the default)."""
        return None

    def input_gradient(self) -> Gradient:
        """A compiled function giving the outputs and their weighted gradient with respect to
        the input (see `Gradient`), for integrated gradients. Raises NoInputGradients where
        the runtime cannot differentiate (the default)."""
        raise NoInputGradients(
            f"model {self.card.name}: its {self.card.framework} runtime has no input gradients"
        )

    @property
    def device(self) -> str:
        """Where the forward pass runs, e.g. "cpu" or "gpu:0 (NVIDIA H100)"."""
        return "cpu"

    @property
    def engine(self) -> str | None:
        """What computes the forward pass when it is not the framework itself (e.g. "ONNX
        Runtime 1.32.0 (verified against scikit-learn on 512 rows)"); None when it is."""
        return None

    def accelerate(self, check_batch: Any) -> None:  # noqa: B027 - most runtimes have none
        """Serve through a faster engine than the framework's own if one reproduces the
        framework's outputs on `check_batch` (a featurised batch the model's input kind
        generated); `engine` then names it. The default: no faster engine. Called once,
        after `load()`, before any request."""

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

    @property
    def computes_asynchronously(self) -> bool:
        """Whether `start_embedded` returns while the backend still computes (on threads of
        its own): only then is starting the next batch early worth it."""
        return False

    def start_embedded(
        self, batch: np.ndarray
    ) -> Callable[[], tuple[np.ndarray, np.ndarray | None]]:
        """`predict_embedded` in two stages: start computing `batch` and return the function
        that waits for the result and returns it. The default computes everything here; a
        runtime whose backend computes asynchronously (JAX) returns before the result is
        ready, so that the batcher can prepare the next batch meanwhile."""
        result = self.predict_embedded(batch)
        return lambda: result

    def warmup(self, batch: np.ndarray) -> None:
        """Run every shape the server will use once, so no request pays for compilation.

        `batch` holds one valid row per input; runtimes with shape buckets widen it.
        """
        self.predict(batch)


class Runtime(ABC):
    """One framework's plug-in, registered in `app.runtimes.RUNTIMES` under `framework`: how
    the process is set up for it (once), how its models are built, and what an unload leaves
    behind. Callers go through `app.runtimes` (`prepare_runtimes`, `load_model`, ...)."""

    # The card's `framework` value this runtime serves.
    framework: ClassVar[str]
    # The distribution whose major.minor version an artifact's behaviour depends on (checked
    # against the card's `library_versions`), or None.
    library: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prepared = False

    @property
    def prepared(self) -> bool:
        """Whether `prepare` has run (successfully) in this process."""
        return self._prepared

    def prepare(self, inference_threads: int) -> None:
        """Set the process up for this framework once; later calls return at once. A set-up
        that raised is tried again on the next call."""
        with self._lock:
            if not self._prepared:
                self.setup(inference_threads)
                self._prepared = True

    def setup(self, inference_threads: int) -> None:
        """The one-time process set-up behind `prepare` (e.g. a backend that must be chosen
        before the framework is imported), `inference_threads` CPU threads per forward pass;
        nothing by default."""
        return None

    @abstractmethod
    def create(
        self, card: ModelCard, folder: Path, *, max_batch_size: int, buckets: Sequence[int] | None
    ) -> Model:
        """The (not yet loaded) model of `card` in `folder`, for batches of at most
        `max_batch_size` rows; `buckets`, if given, are the batch sizes a runtime that
        compiles per shape pads to (else it chooses them from `max_batch_size`)."""

    def read_artifact(self, data: bytes) -> Any:
        """Rebuild a user's artifact of this framework from its bytes with the server's
        trust checks (the importer reads files this way); raises UntrustedArtifact naming
        what it refused (nothing of it rebuilt). NotImplementedError where a runtime reads
        no such artifact."""
        raise NotImplementedError(f"the {self.framework} runtime reads no artifact from bytes")

    @abstractmethod
    def owns(self, model: Model) -> bool:
        """Whether `model` was built by this runtime."""

    def clear_caches(self) -> bool:
        """After one of this runtime's models was unloaded (off the event loop): drop the
        process-wide state it left behind (compiled functions); True when the runtime's models
        still serving must be warmed up again. Nothing to drop by default: False."""
        return False
