"""Import a fitted model as the next version of a served model, atomically.

The version is assembled in `<models>/<name>/.import-<random>/` (the server's scan ignores
folders whose names start with "."), checked end to end there with the server's own adapter
and runtime, then renamed to `<models>/<name>/<version>/` in one step: a live server picks it
up on its next scan and never sees it half-written.
"""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np

from app.kinds import KINDS, InputLimits, make_adapter, predict_request_model
from app.repository.loading import WARMUP_TOLERANCE
from app.runtimes import Model, load_model
from app.schemas.card import (
    CardExample,
    ImportRecord,
    ModelCard,
    RawTextInput,
    sha256_file,
)
from app.tasks import TASKS, task_of
from training.common import next_version
from training.importing.data import Dataset, as_dataset
from training.importing.errors import ImportRefused
from training.importing.evaluation import evaluate_into
from training.importing.keras_model import (
    is_keras_model,
    keras_direct,
    keras_schema,
    save_keras_copy,
)
from training.importing.safety import LoadedModel, read_model_file
from training.importing.schema import (
    Schema,
    check_fitted,
    feature_names,
    infer_labels,
    infer_task,
    input_spec,
    is_text_model,
    typed_features,
)

MODEL_FILE = "model.skops"
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
) -> ImportResult:
    """Save a fitted scikit-learn estimator (or Pipeline) as the next version of `name`.

    `example`: a few input rows as the model takes them (a DataFrame, an (N, F) array, or a
    list of strings for a text pipeline), used to type the features and as the card's replay
    example; `eval`: held-out `(X, y)` for the card's metrics, calibration (classifiers),
    `profile.json` and `errors.json`. Returns the ImportResult; raises ImportRefused (nothing
    written) when the model cannot be served as it is.
    """
    framework = "keras" if is_keras_model(model) else "sklearn"
    return _import(
        LoadedModel(model, "in-memory", framework),
        name,
        source_file=type(model).__name__,
        example=example,
        evaluation=eval,
        task=task,
        labels=labels,
        models_dir=Path(models_dir),
        version=version,
        description=description,
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
    )


def _infer_schema(
    estimator: Any, example: Dataset | None, task: str, labels: list[str] | None
) -> Schema:
    found = infer_task(estimator, task)
    notes = [f"task {found.kind} from the estimator type"]
    if is_text_model(estimator):
        spec: Any = RawTextInput()
        notes.append("raw text input: the pipeline starts with a text vectorizer")
    else:
        names = feature_names(estimator, example.frame if example else None)
        features = typed_features(names, example.frame if example else None)
        spec = input_spec(features)
        notes.append(
            f"{len(features)} features from "
            + ("feature_names_in_" if hasattr(estimator, "feature_names_in_") else "n_features_in_")
            + (", typed by the example's dtypes" if example else " (all numeric: no example)")
        )
    n_targets = 1
    # A regressor's targets are counted from its predictions (a classifier's from classes_).
    if not found.probabilities and example is not None:
        n_targets = np.asarray(estimator.predict(example.model_input[:1])).reshape(1, -1).shape[1]
    labels = infer_labels(estimator, found, labels, n_targets)
    notes.append(
        ("labels from classes_" if found.probabilities and labels else "target names")
        if labels
        else ""
    )
    return Schema(found.card_task(len(labels)), labels, spec, notes)


def _keras_backend() -> str:
    import keras

    return str(keras.backend.backend())


def _keras_dataset(data: Any, names: list[str]) -> Dataset:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ImportRefused(f"the data must have {len(names)} columns, got shape {array.shape}")
    instances = [dict(zip(names, map(float, row), strict=True)) for row in array.tolist()]
    return Dataset(array.astype(np.float32), instances, None)


def _versions(framework: str = "sklearn") -> dict[str, str]:
    versions = {"python": platform.python_version()}
    libraries = (
        ("keras", "numpy")
        if framework == "keras"
        else ("scikit-learn", "numpy", "scipy", "skops", "pandas")
    )
    if framework == "keras":
        versions["keras_backend"] = _keras_backend()
    for library in libraries:
        with contextlib.suppress(Exception):
            versions[library] = installed_version(library)
    return versions


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
) -> ImportResult:
    started = time.perf_counter()
    estimator = loaded.model
    keras = loaded.framework == "keras"
    if keras:
        columns = [str(c) for c in example.columns] if hasattr(example, "columns") else None
        schema = keras_schema(estimator, task, labels, columns)
        names = [f.name for f in getattr(schema.input, "features", [])]
        sample = _keras_dataset(example, names) if example is not None else None
        held_out = _keras_dataset(evaluation[0], names) if evaluation is not None else None
    else:
        check_fitted(estimator)
        sample = as_dataset(example, estimator) if example is not None else None
        held_out = as_dataset(evaluation[0], estimator) if evaluation is not None else None
        # Feature types, categories and missing values are read from all the data given.
        typing = sample
        if sample is not None and held_out is not None and sample.frame is not None:
            import pandas as pd

            typing = Dataset(sample.model_input, [], pd.concat([sample.frame, held_out.frame]))
        schema = _infer_schema(estimator, typing, task, labels)
    if sample is None and keras:
        width = len(getattr(schema.input, "features", []))
        sample = _keras_dataset(np.zeros((1, width)), names)
        schema.notes.append("no example given: the replay example is a row of zeros")
    if sample is None:
        if not KINDS[schema.input.kind].zeros_example:
            raise ImportRefused("a text model needs an example (a few texts) for its card")
        width = len(getattr(schema.input, "features", []))
        sample = as_dataset(np.zeros((1, width)), estimator)
        schema.notes.append("no example given: the replay example is a row of zeros")
    model_dir = models_dir / name
    model_dir.mkdir(parents=True, exist_ok=True)
    number = version if version is not None else next_version(model_dir)
    if (model_dir / str(number)).exists():
        raise ImportRefused(f"{name} version {number} exists already; pick another --version")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=model_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a server run as another user
    try:
        if keras:
            model_file = save_keras_copy(estimator, staging)
        else:
            import skops.io as sio

            model_file = MODEL_FILE
            sio.dump(estimator, staging / MODEL_FILE)
        artifacts = {model_file: sha256_file(staging / model_file)}
        instances = sample.instances[:CARD_EXAMPLES]
        card = _card(
            name,
            number,
            schema,
            loaded,
            source_file,
            estimator,
            artifacts,
            instances,
            description,
            trusted_pickle,
        )
        runtime, adapter = _serving_path(card, staging)
        served = _serve(runtime, adapter, card, instances)
        direct = (keras_direct if keras else _direct)(
            estimator, card, sample.model_input[: len(instances)]
        )
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
        framework="keras" if loaded.framework == "keras" else "sklearn",
        task=schema.task,
        input=schema.input,
        labels=schema.labels,
        model_file=next(iter(artifacts)),
        artifacts=artifacts,
        hyperparameters=_params(estimator) if loaded.framework == "sklearn" else {},
        library_versions=_versions(loaded.framework),
        created_at=datetime.now(UTC).replace(microsecond=0),
        examples=[placeholder],
        imported=ImportRecord(
            source_file=source_file,
            source_format=loaded.source_format,
            serialization="keras" if loaded.framework == "keras" else "skops",
            backend=_keras_backend() if loaded.framework == "keras" else None,
            trusted_pickle=trusted_pickle,
            scan=loaded.scan,
            estimator=f"{kind.__module__}.{kind.__qualname__}",
            inferred=[n for n in schema.notes if n],
        ),
    )


def _params(estimator: Any) -> dict[str, Any]:
    """The estimator's top-level hyperparameters that are plain JSON values."""
    plain = (str, int, float, bool, type(None))
    params = estimator.get_params(deep=False)
    return {
        k: v
        for k, v in sorted(params.items())
        if isinstance(v, plain) and not (isinstance(v, float) and not math.isfinite(v))
    }


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


def _direct(estimator: Any, card: ModelCard, model_input: Any) -> np.ndarray:
    if task_of(card).probabilities:
        return np.asarray(estimator.predict_proba(model_input), dtype=np.float64)
    values = np.asarray(estimator.predict(model_input), dtype=np.float64)
    return values.reshape(len(values), -1)


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
