"""python -m training.backfill errors models/<name>/<version> [--data-dir DIR]

Adds what newer trainers write to an artifact trained before them, without retraining:

- `errors`: the misclassified held-out rows (errors.json, the report page's "Mistakes"),
  predicted through the serving runtime and input adapter on exactly the trainer's held-out
  split, then listed and hashed in the card.

Each subcommand is one function taking the parsed arguments; add one to `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.schemas.card import HeldOutMetrics, ModelCard, sha256_file, verify_artifacts
from training.backend import MissingTrainingDependency, import_training_backend
from training.common import (
    ERRORS_FILE,
    misclassified_examples,
    roc_points,
    write_errors_artifact,
)
from training.data import DataError

PREDICT_BATCH = 256
MAX_FLIPPED_ROWS = 2


class BackfillError(Exception):
    """The artifact cannot be backfilled; the message says why and what to do."""


@dataclass(frozen=True)
class HeldOut:
    """A trainer's held-out split: rows for the adapter's `to_row`, the same rows as a client
    sends them (for errors.json), class indices, the split's name and the data's sha256."""

    rows: Sequence[Any]
    instances: Sequence[Any]
    labels: np.ndarray
    evaluated_on: str
    sha256: str


def _iris(data_dir: Path | None) -> HeldOut:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    from training.data import sha256_arrays
    from training.iris_knn import client_instances

    iris = load_iris()
    x, y = iris.data.astype(np.float64), iris.target.astype(np.int64)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
    return HeldOut(list(x_test), client_instances(x_test), y_test, "test", sha256_arrays(x, y))


def _binary_mlp(data_dir: Path | None) -> HeldOut:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    from training.binary_mlp import N_FEATURES, client_instances
    from training.data import sha256_arrays

    x, y = make_classification(n_samples=1000, n_features=N_FEATURES, n_classes=2, random_state=42)
    x = x.astype(np.float32)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=42)
    return HeldOut(list(x_test), client_instances(x_test), y_test, "test", sha256_arrays(x, y))


def _mnist(data_dir: Path | None) -> HeldOut:
    from training.data import load_mnist
    from training.mnist_cnn import client_instances

    data = load_mnist(data_dir)
    rows = [image.astype(np.float32) for image in data.x_test]
    return HeldOut(rows, client_instances(data.x_test), data.y_test, "test", data.source.sha256)


def _imdb(data_dir: Path | None) -> HeldOut:
    from sklearn.model_selection import train_test_split

    from training.data import load_imdb

    reviews = load_imdb(data_dir)
    indices = np.arange(len(reviews.texts))
    _, held_out = train_test_split(indices, test_size=0.2, stratify=reviews.labels, random_state=42)
    texts = [reviews.texts[i] for i in held_out]
    return HeldOut(texts, texts, reviews.labels[held_out], "validation", reviews.source.sha256)


# The split logic of each trainer's full run (no --max-rows), as in training/<model>.py.
HELD_OUT: dict[str, Callable[[Path | None], HeldOut]] = {
    "iris-knn": _iris,
    "binary-mlp": _binary_mlp,
    "mnist-cnn": _mnist,
    "imdb-sentiment": _imdb,
}


def _load(card: ModelCard, folder: Path) -> tuple[Any, Any]:
    """The model and input adapter exactly as the server loads them."""
    from app.kinds import make_adapter

    if card.framework == "keras":
        from app.runtimes.keras import KerasModel

        model: Any = KerasModel(card, folder, buckets=(1, 64, PREDICT_BATCH))
    else:
        from app.runtimes.sklearn import SklearnModel

        model = SklearnModel(card, folder)
    model.load()
    return model, make_adapter(card, folder, max_image_pixels=10**8)


def backfill_errors(folder: Path, data_dir: Path | None) -> ModelCard:
    """Write `folder/errors.json` from the model's held-out predictions and list it (with its
    sha256) in the card as `errors_file`; for a binary model whose card has no ROC curve, also
    record the curve's points from the same predictions; returns the new card.

    Raises BackfillError when the artifact is not intact, its model has no known held-out
    split, or the data differs from what it was trained on (sha256 or held-out size);
    DataError when the data cannot be read.
    """
    card = ModelCard.read(folder)
    if not isinstance(card.metrics, HeldOutMetrics) or card.training_data is None:
        raise BackfillError(f"{folder}: backfill takes the project's trained classifiers only")
    problems = verify_artifacts(card, folder)
    if problems:
        raise BackfillError(f"{folder}: the artifact is not intact: {'; '.join(problems)}")
    if card.name not in HELD_OUT:
        raise BackfillError(f"no held-out split known for {card.name!r}: {sorted(HELD_OUT)}")
    held = HELD_OUT[card.name](data_dir)
    recorded = card.training_data.sha256
    if recorded is not None and recorded != held.sha256:
        raise BackfillError(
            f"the held-out data (sha256 {held.sha256[:12]}...) is not the data {card.name} "
            f"v{card.version} was trained on ({recorded[:12]}...); point --data-dir at that data"
        )
    if len(held.labels) != card.metrics.test_size:
        raise BackfillError(
            f"the held-out split has {len(held.labels)} rows but the card's metrics used "
            f"{card.metrics.test_size} (trained on a slice, --max-rows?); retrain instead"
        )
    model, adapter = _load(card, folder)
    rows = [adapter.to_row(row) for row in held.rows]
    probabilities = np.concatenate(
        [
            np.asarray(model.predict(adapter.featurize(rows[i : i + PREDICT_BATCH])))
            for i in range(0, len(rows), PREDICT_BATCH)
        ]
    )
    accuracy = float((probabilities.argmax(axis=1) == held.labels).mean())
    # Float noise across library builds may flip a borderline row; more means another split.
    if abs(accuracy - card.metrics.accuracy) > MAX_FLIPPED_ROWS / len(held.labels) + 1e-9:
        raise BackfillError(
            f"the model scores {accuracy:.4f} on the reproduced held-out split, not the card's "
            f"{card.metrics.accuracy:.4f}: not the split it was evaluated on; retrain instead"
        )
    errors = misclassified_examples(
        held.instances, held.labels, probabilities, card.labels, held.evaluated_on
    )
    name = write_errors_artifact(folder, errors)
    metrics = card.metrics.model_dump()
    if len(card.labels) == 2 and metrics.get("roc_curve") is None:
        # Cards from before training recorded the curve's points: the same held-out scores.
        metrics["roc_curve"] = roc_points(held.labels, probabilities[:, 1])
    updated = ModelCard.model_validate(
        {
            **card.model_dump(),
            "metrics": metrics,
            "errors_file": name,
            "artifacts": dict(sorted({**card.artifacts, name: sha256_file(folder / name)}.items())),
        }
    )
    updated.write(folder)
    return updated


def _errors(args: argparse.Namespace) -> str:
    card = backfill_errors(args.folder, args.data_dir)
    errors = json.loads((args.folder / ERRORS_FILE).read_text("utf-8"))
    return (
        f"{card.name} v{card.version}: {errors['wrong']} of {errors['rows']} held-out rows "
        f"misclassified; {len(errors['examples'])} written to {args.folder / ERRORS_FILE}"
    )


SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {"errors": _errors}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.backfill",
        description="Add newer evaluation artifacts to an existing model version.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    errors = commands.add_parser(
        "errors", help="write errors.json (misclassified held-out rows) and list it in the card"
    )
    errors.add_argument("folder", type=Path, help="the version folder, e.g. models/iris-knn/2")
    errors.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist.npz and aclImdb_train.tar.gz (as for training)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; print one line; exit 0, or 2 with a one-line error."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not (args.folder / "card.json").is_file():
        print(f"error: {args.folder} holds no card.json; pass a version folder", file=sys.stderr)
        return 2
    try:
        import_training_backend()  # quietly: the one line below is the whole output
    except MissingTrainingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(SUBCOMMANDS[args.command](args), flush=True)
    except (BackfillError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: the card does not validate: {first['msg']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
