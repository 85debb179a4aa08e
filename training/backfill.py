"""python -m training backfill errors models/<name>/<version> [--data-dir DIR]

Adds what newer trainers write to an artifact trained before them, without retraining:

- `errors`: the misclassified held-out rows (errors.json, the report page's "Mistakes"),
  predicted through the serving runtime and input adapter on exactly the trainer's held-out
  split, then listed and hashed in the card.

Each subcommand is one function taking the parsed arguments; add one to `SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.adapters import InputAdapter, make_adapter
from app.runtimes import Model, load_model
from app.schemas.card import HeldOutMetrics, ModelCard, sha256_file, verify_artifacts
from training import binary_mlp, iris_knn, mnist_cnn
from training.backend import MissingTrainingDependency, import_training_backend
from training.common import (
    ERRORS_FILE,
    misclassified_examples,
    roc_points,
    write_errors_artifact,
)
from training.data import DataError
from training.profile import serving_rows
from training.splits import SPLITS

PREDICT_BATCH = 256
MAX_FLIPPED_ROWS = 2


class BackfillError(Exception):
    """The artifact cannot be backfilled; the message says why and what to do."""


# How a client sends each project model's rows (errors.json lists them so).
CLIENT_INSTANCES: dict[str, Callable[[Any], Sequence[Any]]] = {
    "iris-knn": iris_knn.client_instances,
    "binary-mlp": binary_mlp.client_instances,
    "mnist-cnn": mnist_cnn.client_instances,
    "imdb-sentiment": list,
}


def _load(card: ModelCard, folder: Path) -> tuple[Model, InputAdapter]:
    """The model and input adapter exactly as the server loads them."""
    model = load_model(card, folder, buckets=(1, 64, PREDICT_BATCH))
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
    if card.name not in SPLITS:
        raise BackfillError(f"no held-out split known for {card.name!r}: {sorted(SPLITS)}")
    held = SPLITS[card.name](data_dir, None)
    recorded = card.training_data.sha256
    if recorded is not None and recorded != held.source.sha256:
        raise BackfillError(
            f"the held-out data (sha256 {held.source.sha256[:12]}...) is not the data {card.name} "
            f"v{card.version} was trained on ({recorded[:12]}...); point --data-dir at that data"
        )
    if len(held.y_test) != card.metrics.test_size:
        raise BackfillError(
            f"the held-out split has {len(held.y_test)} rows but the card's metrics used "
            f"{card.metrics.test_size} (trained on a slice, --max-rows?); retrain instead"
        )
    model, adapter = _load(card, folder)
    rows = [adapter.to_row(row) for row in serving_rows(held.x_test)]
    probabilities = np.concatenate(
        [
            np.asarray(model.predict(adapter.featurize(rows[i : i + PREDICT_BATCH])))
            for i in range(0, len(rows), PREDICT_BATCH)
        ]
    )
    accuracy = float((probabilities.argmax(axis=1) == held.y_test).mean())
    # Float noise across library builds may flip a borderline row; more means another split.
    if abs(accuracy - card.metrics.accuracy) > MAX_FLIPPED_ROWS / len(held.y_test) + 1e-9:
        raise BackfillError(
            f"the model scores {accuracy:.4f} on the reproduced held-out split, not the card's "
            f"{card.metrics.accuracy:.4f}: not the split it was evaluated on; retrain instead"
        )
    errors = misclassified_examples(
        CLIENT_INSTANCES[card.name](held.x_test),
        held.y_test,
        probabilities,
        card.labels,
        held.evaluated_on,
    )
    name = write_errors_artifact(folder, errors)
    metrics = card.metrics.model_dump()
    if len(card.labels) == 2 and metrics.get("roc_curve") is None:
        # Cards from before training recorded the curve's points: the same held-out scores.
        metrics["roc_curve"] = roc_points(held.y_test, probabilities[:, 1])
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `backfill` command's arguments: one subcommand per artifact."""
    commands = parser.add_subparsers(dest="artifact", required=True)
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


def run(args: argparse.Namespace) -> int:
    """Run one backfill; print one line; exit 0, or 2 with a one-line error."""
    if not (args.folder / "card.json").is_file():
        print(f"error: {args.folder} holds no card.json; pass a version folder", file=sys.stderr)
        return 2
    try:
        import_training_backend()  # quietly: the one line below is the whole output
    except MissingTrainingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(SUBCOMMANDS[args.artifact](args), flush=True)
    except (BackfillError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: the card does not validate: {first['msg']}", file=sys.stderr)
        return 1
    return 0
