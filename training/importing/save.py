"""Import a fitted model as the next version of a served model, atomically.

The version is assembled in `<models>/<name>/.import-<random>/` (the server's scan ignores
folders whose names start with "."), checked end to end there with the server's own adapter
and runtime, then renamed to `<models>/<name>/<version>/` in one step: a live server picks it
up on its next scan and never sees it half-written.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.kinds import InputLimits, make_adapter, predict_request_model
from app.repository.loading import WARMUP_TOLERANCE
from app.runtimes import Model, UnknownFramework, load_model, runtime_for
from app.schemas.card import CardExample, ImportRecord, ModelCard, sha256_file
from app.tasks import TASKS, task_of
from training.common import next_version
from training.importing.errors import ImportRefused
from training.importing.evaluation import evaluate_into
from training.importing.frameworks import importer_for, read_model_file
from training.importing.importer import Importer
from training.importing.safety import LoadedModel
from training.importing.schema import Schema
from training.importing.vocabulary import read_vocabulary

CARD_EXAMPLES = 3


@dataclass
class ImportResult:
    """Where the version went and what it is."""

    name: str
    version: int
    folder: Path
    card: ModelCard
    seconds: float


def save_model(
    model: Any,
    name: str,
    *,
    example: Any = None,
    eval: tuple[Any, Any] | None = None,
    task: str = "auto",
    labels: list[str] | None = None,
    models_dir: Path | str = "models",
    version: int | None = None,
    description: str | None = None,
    vocabulary: Path | str | list[str] | None = None,
) -> ImportResult:
    """Save a fitted scikit-learn estimator (or Pipeline) as the next version of `name`.

    `example`: a few input rows as the model takes them (a DataFrame, an (N, F) array, or a
    list of strings for a text pipeline), used to type the features and as the card's replay
    example; `eval`: held-out `(X, y)` for the card's metrics, calibration (classifiers),
    `profile.json` and `errors.json`; `vocabulary`: for a Keras model taking token ids, its
    saved vocabulary (a file, one token a line, or the list of `get_vocabulary()`: see
    `training.importing.vocabulary`). Returns the ImportResult; raises ImportRefused (nothing
    written) when the model cannot be served as it is.
    """
    return _import(
        LoadedModel(model, "in-memory"),
        name,
        source_file=type(model).__name__,
        example=example,
        evaluation=eval,
        task=task,
        labels=labels,
        models_dir=Path(models_dir),
        version=version,
        description=description,
        vocabulary=vocabulary,
    )


def import_file(
    path: Path,
    name: str,
    *,
    example: Any = None,
    evaluation: tuple[Any, Any] | None = None,
    task: str = "auto",
    labels: list[str] | None = None,
    trust_pickle: bool = False,
    models_dir: Path = Path("models"),
    version: int | None = None,
    vocabulary: Path | None = None,
) -> ImportResult:
    """`synergy import`: read `path` safely (see `training.importing.safety`), then as
    `save_model`."""
    loaded = read_model_file(path, trust_pickle=trust_pickle)
    return _import(
        loaded,
        name,
        source_file=path.name,
        example=example,
        evaluation=evaluation,
        task=task,
        labels=labels,
        models_dir=models_dir,
        version=version,
        description=None,
        trusted_pickle=trust_pickle and loaded.scan is not None,
        vocabulary=vocabulary,
    )


def _import(
    loaded: LoadedModel,
    name: str,
    *,
    source_file: str,
    example: Any,
    evaluation: tuple[Any, Any] | None,
    task: str,
    labels: list[str] | None,
    models_dir: Path,
    version: int | None,
    description: str | None,
    trusted_pickle: bool = False,
    vocabulary: Path | str | list[str] | None = None,
) -> ImportResult:
    started = time.perf_counter()
    estimator = loaded.model
    importer = importer_for(estimator)
    try:  # before any file is written: a model no runtime of this server could serve
        runtime_for(importer.framework)
    except UnknownFramework as exc:
        raise ImportRefused(str(exc)) from None
    tokens = read_vocabulary(vocabulary) if vocabulary is not None else None
    prepared = importer.prepare(estimator, example, evaluation, task, labels, tokens)
    schema, sample, held_out = prepared.schema, prepared.sample, prepared.held_out
    model_dir = models_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    number = version if version is not None else next_version(model_dir)
    if (model_dir / str(number)).exists():
        raise ImportRefused(f"{name} version {number} exists already; pick another --version")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=model_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a server run as another user
    try:
        model_file = importer.save(estimator, staging)
        artifacts = {model_file: sha256_file(staging / model_file)}
        for file_name, text in schema.files.items():  # beside the model: a vocabulary
            (staging / file_name).write_text(text, encoding="utf-8")
            artifacts[file_name] = sha256_file(staging / file_name)
        instances = sample.instances[:CARD_EXAMPLES]
        card = _card(
            name,
            number,
            schema,
            loaded,
            importer,
            source_file,
            estimator,
            artifacts,
            instances,
            description,
            trusted_pickle,
        )
        runtime, adapter = _serving_path(card, staging)
        served = _serve(runtime, adapter, card, instances)
        direct = importer.direct(estimator, card, sample.model_input[: len(instances)])
        _check_agree(served, direct, card)
        examples = [
            _example(card, instance, row) for instance, row in zip(instances, served, strict=True)
        ]
        card = card.model_copy(update={"examples": examples})
        if evaluation is not None and held_out is not None:
            card = evaluate_into(
                card,
                staging,
                held_out,
                evaluation[1],
                lambda xs: _serve(runtime, adapter, card, xs),
            )
        card = card.model_copy(
            update={
                "training_seconds": None,
                "created_at": datetime.now(UTC).replace(microsecond=0),
            }
        )
        card = ModelCard.model_validate(card.model_dump())  # the whole card, validated once more
        card.write(staging)
        target = model_dir / str(number)
        staging.rename(target)  # atomic on one filesystem: the scan sees all of it or nothing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # a new model's folder, left empty: not a model
            model_dir.rmdir()
        raise
    return ImportResult(name, number, target, card, round(time.perf_counter() - started, 3))


def _card(
    name: str,
    number: int,
    schema: Schema,
    loaded: LoadedModel,
    importer: Importer,
    source_file: str,
    estimator: Any,
    artifacts: dict[str, str],
    instances: list[Any],
    description: str | None,
    trusted_pickle: bool,
) -> ModelCard:
    kind = type(estimator)
    # A placeholder example until the served prediction is known (the card needs one).
    placeholder = TASKS[schema.task].example(instances[0], schema.labels, None)
    return ModelCard(
        name=name,
        version=number,
        description=description or f"{kind.__name__} imported from {source_file} ({schema.task}).",
        framework=importer.framework,
        task=schema.task,
        input=schema.input,
        labels=schema.labels,
        model_file=next(iter(artifacts)),
        artifacts=artifacts,
        hyperparameters=importer.hyperparameters(estimator),
        library_versions=importer.versions(),
        created_at=datetime.now(UTC).replace(microsecond=0),
        examples=[placeholder],
        imported=ImportRecord(
            source_file=source_file,
            source_format=loaded.source_format,
            serialization=importer.serialization,
            backend=importer.backend(),
            trusted_pickle=trusted_pickle,
            scan=loaded.scan,
            estimator=f"{kind.__module__}.{kind.__qualname__}",
            inferred=[n for n in schema.notes if n],
        ),
    )


def _serving_path(card: ModelCard, folder: Path) -> tuple[Any, Any]:
    """The server's runtime (reading the file just written: skops with the server's trust
    list, or .keras in safe mode) and adapter for `card`."""
    runtime: Model = load_model(card, folder, buckets=(1, 8, 64))
    adapter = make_adapter(card, folder, InputLimits(max_text_chars=2**31))
    return runtime, adapter


def _serve(runtime: Any, adapter: Any, card: ModelCard, instances: list[Any]) -> np.ndarray:
    """Outputs for client-shaped `instances`, through validation, the adapter and the
    runtime, as the server computes them."""
    request = predict_request_model(
        card, max_instances=max(1, len(instances)), max_text_chars=2**31, examples=[]
    )
    try:
        parsed = request.model_validate({"instances": instances}).instances  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
        raise ImportRefused(f"the example does not fit the inferred schema: {exc}") from None
    rows = [adapter.to_row(instance) for instance in parsed]
    return np.asarray(runtime.predict(adapter.featurize(rows)))


def _check_agree(served: np.ndarray, direct: np.ndarray, card: ModelCard) -> None:
    """The server's path must give what the model gives in-process (float32 noise aside)."""
    scale = task_of(card).replay_scale(direct)
    off = float(np.max(np.abs(served - direct) / scale))
    if not off <= WARMUP_TOLERANCE:
        raise ImportRefused(
            "served through the server's input path, the model predicts differently from the "
            f"model in-process (off by {off:.2g} on the example); the example's columns or "
            "types do not match what the model was fitted on"
        )


def _example(card: ModelCard, instance: Any, output: np.ndarray) -> CardExample:
    return task_of(card).example(instance, card.labels, output.tolist())
