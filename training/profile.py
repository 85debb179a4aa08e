"""Reference profiles for drift detection, and the data splits they are computed on.

    python -m training profile models/<name>/<version> [--data-dir DIR]

computes `profile.json` (see `app.monitoring.profile`) from the training split of the data the
card names, with the model's own predictions for the predicted-label shares, writes it into
the version folder and adds it to the card (`profile_file`, `artifacts` with its sha256).
Re-runnable: it replaces an existing profile. The trainers call `add_profile` on every new
version, so only artifacts trained before profiles existed need this command.

The splits repeat the trainers' (same functions, seeds and fractions): iris 80/20 stratified,
binary-mlp 70/30 stratified, MNIST's official train/test, IMDb's official train reviews 80/20
stratified. At most `PROFILE_MAX_ROWS` training rows (a seeded sample) are profiled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.monitoring.profile import PROFILE_FILE, StatisticsComputer, build_profile
from app.schemas.card import ModelCard, sha256_file
from training.backend import MissingTrainingDependency, import_training_backend

PROFILE_MAX_ROWS = 10_000
PREDICT_CHUNK_ROWS = 256
SEED = 42


@dataclass
class Split:
    """Serving-form rows (as the adapters make them) of a model's training and held-out data."""

    train: list[Any]
    held_out: list[Any]
    held_out_labels: list[str]


def load_split(name: str, data_dir: Path | None, max_rows: int | None = None) -> Split:
    """The training and held-out rows of one of the four models, as its trainer split them."""
    from sklearn.model_selection import train_test_split

    if name == "iris-knn":
        from sklearn.datasets import load_iris

        iris = load_iris()
        x, y = iris.data.astype(np.float64), iris.target.astype(np.int64)
        x_train, x_test, _, y_test = train_test_split(
            x, y, test_size=0.2, stratify=y, random_state=42
        )
        names = [str(n) for n in iris.target_names]
        return Split(
            [r.astype(np.float32) for r in x_train[:max_rows]],
            [r.astype(np.float32) for r in x_test],
            [names[i] for i in y_test],
        )
    if name == "binary-mlp":
        from sklearn.datasets import make_classification

        from training.binary_mlp import N_FEATURES

        x, y = make_classification(
            n_samples=1000, n_features=N_FEATURES, n_classes=2, random_state=42
        )
        x = x.astype(np.float32)
        x_train, x_test, _, y_test = train_test_split(
            x, y, test_size=0.3, stratify=y, random_state=42
        )
        return Split(list(x_train[:max_rows]), list(x_test), [str(int(v)) for v in y_test])
    if name == "mnist-cnn":
        from training.data import load_mnist

        data = load_mnist(data_dir)
        x_train = data.x_train[:max_rows].astype(np.float32)
        return Split(
            list(x_train),
            list(data.x_test.astype(np.float32)),
            [str(int(v)) for v in data.y_test],
        )
    if name == "imdb-sentiment":
        from training.data import IMDB_LABELS, load_imdb

        reviews = load_imdb(data_dir)
        indices = np.arange(len(reviews.texts))
        if max_rows:
            indices = np.random.RandomState(SEED).permutation(indices)[:max_rows]
        labels = reviews.labels[indices]
        train_idx, held_idx = train_test_split(
            indices, test_size=0.2, stratify=labels, random_state=42
        )
        return Split(
            [reviews.texts[i] for i in train_idx],
            [reviews.texts[i] for i in held_idx],
            [IMDB_LABELS[int(reviews.labels[i])] for i in held_idx],
        )
    raise ValueError(f"no known training data for model {name!r}")


def predict_labels(card: ModelCard, folder: Path, rows: Sequence[Any]) -> list[str]:
    """The labels the version in `folder` predicts for serving-form rows."""
    from app.kinds import make_adapter
    from app.runtimes.base import Model
    from app.runtimes.keras import KerasModel
    from app.runtimes.sklearn import SklearnModel

    model: Model = (
        KerasModel(card, folder, buckets=[PREDICT_CHUNK_ROWS])
        if card.framework == "keras"
        else SklearnModel(card, folder)
    )
    model.load()
    adapter = make_adapter(card, folder, max_image_pixels=4_000_000)
    labels: list[str] = []
    for start in range(0, len(rows), PREDICT_CHUNK_ROWS):
        chunk = list(rows[start : start + PREDICT_CHUNK_ROWS])
        chunk = adapter.training_rows(chunk)
        probabilities = np.asarray(model.predict(adapter.featurize(chunk)))
        labels.extend(card.labels[int(i)] for i in probabilities.argmax(axis=1))
    return labels


def add_profile(
    folder: Path, data_dir: Path | None, max_rows: int | None = None, split: Split | None = None
) -> ModelCard:
    """Compute the profile of the version in `folder`, write it and list it in the card."""
    card = ModelCard.read(folder)
    split = split or load_split(card.name, data_dir, max_rows)
    rows = split.train
    if len(rows) > PROFILE_MAX_ROWS:
        chosen = np.random.RandomState(SEED).choice(len(rows), PROFILE_MAX_ROWS, replace=False)
        rows = [rows[i] for i in sorted(chosen)]
    computer = StatisticsComputer(card, folder)
    profile = build_profile(computer, rows, predict_labels(card, folder, rows))
    path = profile.write(folder)
    artifacts = {**card.artifacts, PROFILE_FILE: sha256_file(path)}
    card = card.model_copy(update={"artifacts": artifacts, "profile_file": PROFILE_FILE})
    card = ModelCard.model_validate(card.model_dump())
    card.write(folder)
    return card


def main(argv: list[str] | None = None) -> int:
    """`python -m training profile FOLDER...`: exit 0 when every profile was written."""
    parser = argparse.ArgumentParser(
        prog="python -m training profile",
        description="Add a drift reference profile (profile.json) to existing model versions.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="models/<name>/<version> folders")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist.npz and aclImdb_train.tar.gz (omit to download)",
    )
    args = parser.parse_args(argv)
    try:
        import_training_backend()  # quietly: one line per folder, whatever the CPU
    except MissingTrainingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for folder in args.folders:
        try:
            card = add_profile(folder, args.data_dir)
        except (OSError, ValueError) as exc:
            print(f"error: {folder}: {exc}", file=sys.stderr)
            return 2
        print(
            f"{card.name} v{card.version}: profile.json with "
            f"{len(card.artifacts)} artifacts hashed -> {folder}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
