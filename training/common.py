"""What every trainer shares: options, evaluation, progress and writing the carded artifact."""

from __future__ import annotations

import json
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
from typing import Any, Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from app.schemas.card import (
    Calibration,
    CardExample,
    HeldOutMetrics,
    InputSpec,
    ModelCard,
    TrainingData,
    sha256_file,
)
from app.tasks import binary_to_two_columns
from training.calibration import ECE_BINS, fit_temperature, reliability
from training.profile import add_profile

HISTORY_FILE = "history.json"


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
    metrics: HeldOutMetrics
    examples: list[CardExample]
    libraries: Sequence[str] = ("numpy", "scikit-learn")
    intended_use: str | None = None
    limitations: str | None = None
    calibration: Calibration | None = None
    # Keras' History.history: metric name -> one value per epoch (written as history.json).
    history: dict[str, list[float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Trainer = Callable[[Path, TrainOptions], TrainResult]


def evaluate(
    y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], evaluated_on: str
) -> HeldOutMetrics:
    """Held-out metrics from true class indices and predicted probabilities (N, C)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        probabilities = np.hstack([1 - probabilities, probabilities])
    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(labels)))
    binary = len(labels) == 2
    return HeldOutMetrics(
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
        roc_curve=(
            roc_points(y_true, probabilities[:, 1])
            if binary and len(set(y_true.tolist())) == 2
            else None
        ),
    )


# The report page's optional evaluation artifacts: the ROC curve's points (in the card's
# metrics) and the misclassified held-out rows (errors.json).
ROC_MAX_POINTS = 101
ERRORS_FILE = "errors.json"
ERRORS_LIMIT = 12


def roc_points(
    y_true: np.ndarray, scores: np.ndarray, max_points: int = ROC_MAX_POINTS
) -> list[list[float]]:
    """The ROC curve as [false positive rate, true positive rate] points from (0, 0) to (1, 1),
    thinned to at most `max_points` (evenly over the thresholds, ends kept) so the card stays
    small; 4 decimals, enough for a chart."""
    fpr, tpr, _ = roc_curve(np.asarray(y_true), np.asarray(scores, dtype=np.float64))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    return [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]


def misclassified_examples(
    instances: Sequence[Any],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    evaluated_on: str,
    limit: int = ERRORS_LIMIT,
) -> dict[str, Any]:
    """The held-out rows the model gets wrong, most confident mistakes first, for the report
    page (`errors.json`; write it with `write_errors_artifact` into the artifact folder, and
    `train_and_save` lists and hashes it in the card).

    `instances`: the held-out rows as a client sends them (pixel grids, review texts, feature
    objects), aligned with `y_true` (class indices) and `probabilities` (N, C), or (N, 1) for
    a sigmoid output. Returns `{"evaluated_on", "rows", "wrong", "examples": [{"index",
    "instance", "label", "predicted", "confidence"}]}` with at most `limit` examples.
    """
    probabilities = binary_to_two_columns(np.asarray(probabilities, dtype=np.float64))
    y_true = np.asarray(y_true)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probabilities.max(axis=1)
    # Most confident first; ties by row index, so the selection is deterministic.
    order = wrong[np.lexsort((wrong, -confidence[wrong]))][:limit]
    return {
        "evaluated_on": evaluated_on,
        "rows": len(y_true),
        "wrong": len(wrong),
        "examples": [
            {
                "index": int(i),
                "instance": instances[i],
                "label": labels[int(y_true[i])],
                "predicted": labels[int(predicted[i])],
                "confidence": round(float(confidence[i]), 4),
            }
            for i in order
        ],
    }


def write_errors_artifact(folder: Path, errors: dict[str, Any]) -> str:
    """Write `misclassified_examples(...)` as `folder/errors.json`; returns the file name."""
    (folder / ERRORS_FILE).write_text(json.dumps(errors, separators=(",", ":")) + "\n", "utf-8")
    return ERRORS_FILE


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
    finish: Callable[[Path], ModelCard] | None = None,
) -> tuple[ModelCard, Path]:
    """Train into a temporary folder, write the card, then move it into place atomically.

    `finish(folder)`, when given, runs on the complete folder before the move and returns
    the card it rewrote there (the out-of-domain calibration), so a server polling the
    models directory never sees the version without it. Whatever fails, `out_dir` never
    holds a half-written version folder.
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
        if result.history is not None:
            history = {
                key: [round(float(value), 6) for value in values]
                for key, values in result.history.items()
            }
            (work / HISTORY_FILE).write_text(json.dumps(history, indent=1) + "\n", "utf-8")
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
            calibration=result.calibration,
            history_file=HISTORY_FILE if result.history is not None else None,
            intended_use=result.intended_use,
            limitations=result.limitations,
            errors_file=ERRORS_FILE if ERRORS_FILE in artifacts else None,
        )
        card.write(work)
        # The drift reference profile (profile.json), listed and hashed in the card.
        card = add_profile(work, options.data_dir, options.max_rows)
        if finish is not None:
            card = finish(work)
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


def calibrate_keras(
    model: Any,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    evaluated_on: Literal["test", "validation"],
    fitted_on: str,
) -> Calibration:
    """Temperature scaling, baked into the model's last Dense layer (softmax or sigmoid).

    T is fitted on the validation split (`fit_temperature`); then the layer's kernel and bias
    are divided by T, which divides its logits by T: the saved `.keras` file holds no new
    layer, every backend and protocol serves the calibrated probabilities, and the argmax (so
    accuracy) is unchanged. The ECE before and after is measured on (x_eval, y_eval), the
    held-out split of the card's metrics.
    """
    import keras

    last = model.layers[-1]
    features = keras.Model(model.inputs, last.input)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in last.get_weights())

    def logits(x: np.ndarray) -> np.ndarray:
        hidden = np.asarray(features.predict(x, batch_size=512, verbose=0), dtype=np.float64)
        return hidden @ kernel + bias

    before = np.asarray(model.predict(x_eval, batch_size=512, verbose=0))
    temperature = fit_temperature(logits(x_val), np.asarray(y_val))
    last.set_weights([(w / temperature).astype(np.float32) for w in (kernel, bias)])
    after = np.asarray(model.predict(x_eval, batch_size=512, verbose=0))
    ece_before, _ = reliability(y_eval, before)
    ece_after, table = reliability(y_eval, after)
    accuracy_before = float(
        (binary_to_two_columns(before.astype(np.float64)).argmax(axis=1) == y_eval).mean()
    )
    return Calibration(
        method="temperature scaling (last layer's logits divided by T inside the saved model)",
        fitted_on=fitted_on,
        temperature=round(temperature, 6),
        evaluated_on=evaluated_on,
        bins=ECE_BINS,
        ece_before=ece_before,
        ece_after=ece_after,
        accuracy_before=round(accuracy_before, 6),
        reliability=table,
    )


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
