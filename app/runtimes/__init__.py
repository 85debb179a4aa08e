"""The runtimes: one plug-in per model framework, registered in one table.

`RUNTIMES` maps a card's `framework` ("sklearn", "keras") to its `Runtime`; everything else
(the lifecycle, training's profiles and backfills, the importer, explanations) goes through the
functions below and the `Model` base class, so no other module compares a framework. A new
framework is one module here (a `Model` and a `Runtime` subclass) and one line in the table.

    prepare_runtimes(frameworks, threads)   once per process, before any model of them loads
    load_model(card, folder, ...)          -> a loaded Model
    library_version_problem(card)          -> why this server should not load the artifact
    runtime_of(model).clear_caches()       after an unload: must the others warm up again?
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from threadpoolctl import threadpool_limits

from app.runtimes import trust
from app.runtimes.base import (
    Model,
    NoInputGradients,
    Runtime,
    UnservableArtifact,
    UntrustedArtifact,
)
from app.runtimes.keras import KerasRuntime
from app.runtimes.keras_text import split_text_model
from app.runtimes.sklearn import SklearnRuntime
from app.schemas.card import ModelCard

__all__ = [
    "RUNTIMES",
    "Model",
    "NoInputGradients",
    "Runtime",
    "UnknownFramework",
    "UnservableArtifact",
    "UntrustedArtifact",
    "library_version_problem",
    "limit_native_threads",
    "load_model",
    "prepare_runtimes",
    "runtime_for",
    "runtime_of",
    "split_text_model",
]

# One instance per framework for the process: a runtime's set-up (the Keras backend) is
# process-wide, so its "done once" flag is too.
RUNTIMES: dict[str, Runtime] = {
    runtime.framework: runtime for runtime in (SklearnRuntime(), KerasRuntime())
}


class UnknownFramework(ValueError):
    """No runtime is registered for a card's framework (message safe to show)."""


def runtime_for(framework: str) -> Runtime:
    """The runtime registered for `framework`; raises UnknownFramework naming the known ones."""
    runtime = RUNTIMES.get(framework)
    if runtime is None:
        raise UnknownFramework(
            f"no runtime serves framework {framework!r}; this server has: "
            + ", ".join(sorted(RUNTIMES))
        )
    return runtime


def runtime_of(model: Model) -> Runtime:
    """The runtime that built `model`; raises UnknownFramework for a model none built."""
    runtime = runtime_for(model.card.framework)
    if not runtime.owns(model):
        raise UnknownFramework(
            f"model {model.card.name} was not built by the {runtime.framework} runtime"
        )
    return runtime


def prepare_runtimes(frameworks: Iterable[str], inference_threads: int) -> None:
    """Set the process up for each framework (once per process; later calls cost nothing).
    Call before any model of them loads: a backend may have to be chosen before its library
    is imported. A framework no runtime serves is passed over: its versions fail to load
    (`load_model` raises UnknownFramework), the others still serve."""
    for framework in sorted(set(frameworks)):
        runtime = RUNTIMES.get(framework)
        if runtime is not None:
            runtime.prepare(inference_threads)


def limit_native_threads(blas_threads: int, openmp_threads: int) -> None:
    """Limit the per-call thread pools of the native libraries loaded so far (threadpoolctl):
    every BLAS (NumPy's and SciPy's OpenBLAS) to `blas_threads`, OpenMP (scikit-learn's
    neighbour searches) to `openmp_threads`; 0 leaves a pool as it is. Call after a model
    loads, as its library may have brought a pool of its own.

    Why: on a server the parallelism comes from concurrent requests, and a batch's products
    are small; an idle OpenBLAS or OpenMP thread spins for milliseconds after each call, so
    the extra threads took a core from the event loop for nothing (mnist-cnn's out-of-domain
    score: about 300 us of CPU per request, bench/RESULTS.md, issue 25)."""
    if blas_threads > 0:
        threadpool_limits(limits=blas_threads, user_api="blas")
    if openmp_threads > 0:
        threadpool_limits(limits=openmp_threads, user_api="openmp")


def load_model(
    card: ModelCard,
    folder: Path,
    *,
    max_batch_size: int = 1,
    buckets: Sequence[int] | None = None,
) -> Model:
    """Build and load the model of `card` from `folder` (its files' hashes checked before) with
    the runtime of `card.framework`, for batches of at most `max_batch_size` rows; `buckets`
    overrides the batch sizes a runtime that compiles per shape pads to. Does not prepare the
    runtime (see `prepare_runtimes`). Raises UnknownFramework, or what the runtime's loading
    raises (a missing file, an untrusted or inconsistent artifact)."""
    runtime = runtime_for(card.framework)
    model = runtime.create(card, folder, max_batch_size=max_batch_size, buckets=buckets)
    model.load()
    return model


def library_version_problem(card: ModelCard) -> str | None:
    """Why the artifact of `card` should not be loaded by this server's library versions (the
    card's `library_versions` against its runtime's library), or None. Raises UnknownFramework."""
    library = runtime_for(card.framework).library
    return trust.library_version_problem(library, card.library_versions)
