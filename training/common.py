"""What every trainer shares: options, evaluation, progress and writing the carded artifact."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from app.runtimes.base import binary_to_two_columns
from app.schemas.card import CardExample, InputSpec, Metrics, ModelCard, TrainingData, sha256_file


@dataclass(frozen=True)
class TrainOptions:
    """Command-line options every trainer understands."""

    data_dir: Path | None = None
    epochs: int | None = None  # None: the trainer's own default
    seed: int = 42
    max_rows: int | None = None  # train on a slice (tests, smoke runs)
    quiet: bool = False


@dataclass
class TrainResult:
    """What a trainer hands back: files are already in the work folder."""

    description: str
    framework: str
    task: str
    input: InputSpec
    labels: list[str]
    model_file: str
    training_data: TrainingData
    hyperparameters: dict[str, Any]
    metrics: Metrics
    examples: list[CardExample]
    libraries: Sequence[str] = ("numpy", "scikit-learn")
    intended_use: str | None = None
    limitations: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Trainer = Callable[[Path, TrainOptions], TrainResult]


def evaluate(
    y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], evaluated_on: str
) -> Metrics:
    """Held-out metrics from true class indices and predicted probabilities (N, C)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        probabilities = np.hstack([1 - probabilities, probabilities])
    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(labels)))
    binary = len(labels) == 2
    return Metrics(
        evaluated_on=evaluated_on,
        test_size=len(y_true),
        accuracy=round(float(accuracy_score(y_true, predicted)), 6),
        precision_macro=round(
            float(
                precision_score(y_true, predicted, average="macro", labels=classes, zero_division=0)
            ),
            6,
        ),
        recall_macro=round(
            float(
                recall_score(y_true, predicted, average="macro", labels=classes, zero_division=0)
            ),
            6,
        ),
        f1_macro=round(
            float(f1_score(y_true, predicted, average="macro", labels=classes, zero_division=0)), 6
        ),
        roc_auc=(
            round(float(roc_auc_score(y_true, probabilities[:, 1])), 6)
            if binary and len(set(y_true.tolist())) == 2
            else None
        ),
        confusion_matrix=confusion_matrix(y_true, predicted, labels=classes).tolist(),
    )


def predicted_examples(
    instances: Sequence[Any], true_labels: Sequence[str], predict: Callable[[Sequence[Any]], Any]
) -> list[CardExample]:
    """Card examples with what the freshly trained model predicts for them.

    `predict` takes the instances exactly as a client sends them (after any rounding) and
    returns probabilities (N, C), or (N, 1) for a sigmoid output.
    """
    probabilities = binary_to_two_columns(np.asarray(predict(instances), dtype=np.float64))
    return [
        CardExample(instance=instance, label=label, probabilities=[round(float(p), 7) for p in row])
        for instance, label, row in zip(instances, true_labels, probabilities, strict=True)
    ]


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Versions of Python and of the libraries that made the artifact."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "keras" in names:
        import keras

        versions["keras_backend"] = str(keras.backend.backend())
    return versions


class Progress:
    """One line per step on stderr, prefixed with the model name (quiet in tests)."""

    def __init__(self, name: str, quiet: bool = False) -> None:
        self.name = name
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.started
            print(f"[{self.name} {elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def keras_callback(self, epochs: int) -> Any:
        """A Keras callback reporting each epoch on one line."""
        import keras

        progress = self

        class EpochLine(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                shown = "  ".join(
                    f"{k} {v:.4f}"
                    for k, v in logs.items()
                    if k in ("loss", "accuracy", "val_loss", "val_accuracy")
                )
                progress(f"epoch {epoch + 1}/{epochs}  {shown}")

        return EpochLine()


def next_version(model_dir: Path) -> int:
    """One more than the highest integer version folder (1 for a new model)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def train_and_save(
    name: str,
    trainer: Trainer,
    out_dir: Path,
    options: TrainOptions,
    version: int | None = None,
    replace: bool = False,
) -> tuple[ModelCard, Path]:
    """Train into a temporary folder, write the card, then move it into place atomically.

    Whatever fails, `out_dir` never holds a half-written version folder.
    """
    model_dir = out_dir / name
    version = version or next_version(model_dir)
    target = model_dir / str(version)
    if target.exists() and not replace:
        raise FileExistsError(
            f"{target} already exists; pass another --version, or --force to replace it"
        )
    created_model_dir = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-{version}-", dir=model_dir))
    # mkdtemp makes the folder private (0700); the artifact is for any user that serves it.
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)
    try:
        started = time.perf_counter()
        result = trainer(work, options)
        seconds = time.perf_counter() - started
        artifacts = {p.name: sha256_file(p) for p in sorted(work.iterdir()) if p.is_file()}
        card = ModelCard(
            name=name,
            version=version,
            description=result.description,
            framework=result.framework,
            task=result.task,
            input=result.input,
            labels=result.labels,
            model_file=result.model_file,
            artifacts=artifacts,
            training_data=result.training_data,
            hyperparameters=result.hyperparameters,
            metrics=result.metrics,
            library_versions=library_versions(result.libraries),
            seed=options.seed,
            created_at=datetime.now(UTC).replace(microsecond=0),
            training_seconds=round(seconds, 1),
            examples=result.examples,
            intended_use=result.intended_use,
            limitations=result.limitations,
        )
        card.write(work)
        # The drift reference profile (profile.json), listed and hashed in the card.
        from training.profile import add_profile

        card = add_profile(work, options.data_dir, options.max_rows)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
        # An empty model folder would show up as a failed model in the server's readiness.
        if created_model_dir and model_dir.exists() and not any(model_dir.iterdir()):
            model_dir.rmdir()
    return card, target


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend; make TensorFlow ops deterministic."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "training runs on the TensorFlow backend (its input pipelines use tf.data); set "
            f"KERAS_BACKEND=tensorflow (Keras is on {keras.backend.backend()})"
        )
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def save_keras(model: Any, path: Path) -> None:
    """Save a Keras 3 `.keras` file without optimizer state (an uncompiled twin of the model)."""
    import keras

    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    inference.save(path)
