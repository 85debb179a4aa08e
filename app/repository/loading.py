"""Loading one model version: verify its files against the card, load the runtime and the
input kind's files, warm up every batch bucket, replay the card's examples; and freeing an
unloaded version's memory. Runs on worker threads; the lifecycle (`app.repository.lifecycle`)
decides what loads when.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from app.budget import release_free_memory
from app.kinds import InputAdapter, InputLimits, predict_request_model
from app.repository.versions import CardedVersion, ModelEntry
from app.runtimes import (
    Model,
    Runtime,
    UnknownFramework,
    UnservableArtifact,
    UntrustedArtifact,
    library_version_problem,
    limit_native_threads,
    load_model,
)
from app.schemas.card import ModelCard, verify_artifacts
from app.settings import BatchingSettings, LimitsSettings, RepositorySettings
from app.tasks import task_of

log = logging.getLogger(__name__)

T = TypeVar("T")
# Float noise between backends and devices (TF32 on GPUs) stays far below this; a skewed
# preprocessing or a wrong artifact is far above it.
WARMUP_TOLERANCE = 2e-3
# Rows a faster engine is checked on before it serves (`accelerate`): a few milliseconds of
# both engines at load; the same rows at every load.
CHECK_ROWS = 512
CHECK_SEED = 20261207


class ArtifactMismatch(RuntimeError):
    """The artifact loads but does not behave as the card says (message safe to show)."""


def input_limits(limits: LimitsSettings) -> InputLimits:
    """The settings' limits on a request's inputs, for the adapters."""
    return InputLimits(
        max_instances=limits.max_instances,
        max_text_chars=limits.max_text_chars,
        max_image_pixels=limits.max_image_pixels,
    )


def verify(entry: ModelEntry, card: ModelCard) -> bool:
    """Check the artifact hashes against the card; mark the entry failed on any mismatch."""
    started = time.perf_counter()
    problems = verify_artifacts(card, entry.folder)
    if problems:
        entry.fail("artifact check failed: " + "; ".join(problems))
        return False
    log.debug("verified %s/%s in %.3fs", entry.name, entry.version, time.perf_counter() - started)
    return True


def load_version(
    entry: ModelEntry,
    carded: CardedVersion,
    repository: RepositorySettings,
    batching: BatchingSettings,
    stopping: Callable[[], bool],
) -> Model | None:
    """Verify, load, warm up and replay one version (on a worker thread): its runtime, or
    None if it failed (the entry then says why) or `stopping()` became true meanwhile."""
    card, adapter = carded.card, carded.kind
    started = time.perf_counter()
    try:
        if not verify(entry, card):
            return None
        mismatch = library_version_problem(card)
        if mismatch is not None and not repository.allow_library_version_mismatch:
            entry.fail(f"loading failed: {mismatch}")
            return None
        model_batching = batching.for_model(entry.name)
        model = load_model(card, entry.folder, max_batch_size=model_batching.max_batch_size)
        adapter.load()
        if repository.onnx_acceleration:
            accelerate(model, adapter)
        limit_native_threads(repository.blas_threads, repository.openmp_threads)
        if repository.warmup:
            warm_up(model, adapter)
        if stopping():  # stopped while it loaded: it never served
            return None
    except Exception as exc:
        log.exception("loading %s/%s failed", entry.name, entry.version)
        entry.fail(load_failure_reason(card, exc))
        return None
    entry.load_seconds = round(time.perf_counter() - started, 3)
    log.info(
        "model %s version %s ready on %s%s in %.2fs",
        entry.name,
        entry.version,
        model.device,
        f", {model.engine}" if model.engine else "",
        entry.load_seconds,
    )
    return model


def accelerate(model: Model, adapter: InputAdapter) -> None:
    """Let the model's runtime swap in a faster engine, checked on rows its kind generates
    (`Model.accelerate`; before the warm-up, which then replays the card's examples through
    it too). A kind that generates no rows leaves the framework serving."""
    try:
        rows = adapter.check_rows(example_rows(adapter), CHECK_ROWS, seed=CHECK_SEED)
        if rows:
            model.accelerate(adapter.featurize(rows))
    except Exception:  # an engine is an option: its failure never fails the version
        log.exception(
            "model %s/%s: no faster engine (its check failed); its framework serves it",
            adapter.card.name,
            adapter.card.version,
        )


def load_failure_reason(card: ModelCard, exc: BaseException) -> str:
    """Why a model version failed to load, in the project's words: the server's own checks
    say what they found; a framework's exception (its text can hold paths and internals)
    becomes the files it was loading, with the details in the server log."""
    if isinstance(
        exc, ArtifactMismatch | UntrustedArtifact | UnknownFramework | UnservableArtifact
    ):
        return f"loading failed: {exc}"
    files = ", ".join(sorted(card.artifacts)) or "its files"
    return (
        f"loading failed: {card.framework} could not load the model from {files}; the "
        "server log has the details"
    )


def collect(runtime: Runtime | None, live: list[tuple[Model, InputAdapter]]) -> None:
    """Free an unloaded version's memory: the runtime's objects, and glibc's freed arenas.

    The unloaded model's `runtime` drops what it keeps process-wide for it (JAX's compiled
    functions, `Runtime.clear_caches`); if that costs its versions still serving (`live`)
    their compiled shapes, they are warmed up again here, off the event loop, rather than
    compiling on their next request.
    """
    gc.collect()
    if runtime is not None and runtime.clear_caches():
        gc.collect()
        for model, adapter in live:
            try:
                warm_up(model, adapter)
            except Exception:  # it serves anyway; its next request compiles
                log.exception("warming %s up again after an unload failed", adapter.card.name)
    release_free_memory()


def example_rows(adapter: InputAdapter) -> list[Any]:
    """The card's examples as rows of its kind, validated like a request but not held to the
    clients' size limits. Raises what a request's validation raises."""
    examples = adapter.card.examples
    unlimited = predict_request_model(
        adapter.card, max_instances=len(examples), max_text_chars=2**31, examples=[]
    )
    body = {"instances": [example.instance for example in examples]}
    instances = unlimited.model_validate(body).instances  # type: ignore[attr-defined]
    return [adapter.to_row(instance) for instance in instances]


def warm_up(model: Model, adapter: InputAdapter) -> None:
    """Compile every batch bucket, then replay the card's examples end to end.

    The examples' recorded probabilities must come back (within float noise): a model that
    loads but predicts differently from training (preprocessing skew, a broken backend) is
    failed here rather than served. Raises ArtifactMismatch.
    """
    examples = adapter.card.examples
    rows = example_rows(adapter)
    model.warmup(adapter.featurize(rows[:1]))
    predicted = model.predict(adapter.featurize(rows))
    card = adapter.card
    task = task_of(card)
    for example, output in zip(examples, predicted, strict=True):
        recorded = card.recorded_output(example)
        if recorded is None:
            continue
        scales = task.replay_scale(np.asarray(recorded, dtype=np.float64)).tolist()
        drift = max(
            abs(a - b) / scale for a, b, scale in zip(output, recorded, scales, strict=True)
        )
        if drift > WARMUP_TOLERANCE:
            what = task.replayed
            raise ArtifactMismatch(
                f"the loaded model does not reproduce the {what} recorded when it was saved "
                f"for a card example (off by {drift:.2g}); the artifact or the preprocessing "
                "differs from what was saved"
            )


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, on a daemon thread: loading a model cannot be interrupted, and a
    stop while it runs (Ctrl-C during start-up) must not wait for it; the default executor
    is joined at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = function(*args), None
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        # RuntimeError: the loop is closed, nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="load-models", daemon=True).start()
    return await future
