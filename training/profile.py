"""Reference profiles for drift detection, computed on the trainers' own training split.

    python -m training profile models/<name>/<version> [--data-dir DIR]

computes `profile.json` (see `app.monitoring.profile`) from the training split of the data the
card names, with the model's own predictions for the predicted-label shares, writes it into
the version folder and adds it to the card (`profile_file`, `artifacts` with its sha256).
Re-runnable: it replaces an existing profile. The trainers call `add_profile` on every new
version, so only artifacts trained before profiles existed need this command.

The rows are the training split of `training.splits` (the trainers' own). At most
`PROFILE_MAX_ROWS` training rows (a seeded sample) are profiled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.adapters import TextAdapter, make_adapter
from app.monitoring.profile import PROFILE_FILE, StatisticsComputer, build_profile
from app.preprocessing.text import EncodedText
from app.runtimes import load_model
from app.schemas.card import ModelCard, sha256_file
from training.backend import MissingTrainingDependency, import_training_backend
from training.splits import Split, load_split

PROFILE_MAX_ROWS = 10_000
PREDICT_CHUNK_ROWS = 256
SEED = 42


def serving_rows(rows: Any) -> list[Any]:
    """A split's rows in the form the input adapters make them: float32 arrays for tabular
    rows and images, the texts as they are."""
    if isinstance(rows, list):
        return rows
    return [np.asarray(row, dtype=np.float32) for row in rows]


def predict_labels(card: ModelCard, folder: Path, rows: Sequence[Any]) -> list[str]:
    """The labels the version in `folder` predicts for serving-form rows."""
    model = load_model(card, folder, buckets=[PREDICT_CHUNK_ROWS])
    adapter = make_adapter(card, folder, max_image_pixels=4_000_000)
    labels: list[str] = []
    for start in range(0, len(rows), PREDICT_CHUNK_ROWS):
        chunk = list(rows[start : start + PREDICT_CHUNK_ROWS])
        if isinstance(adapter, TextAdapter):
            # Texts as the adapter's rows; `encode`, not `to_row`: a training review with no
            # known word is still part of the training distribution.
            chunk = [EncodedText(text, adapter.vectorizer.encode(text)) for text in chunk]
        probabilities = np.asarray(model.predict(adapter.featurize(chunk)))
        labels.extend(card.labels[int(i)] for i in probabilities.argmax(axis=1))
    return labels


def add_profile(
    folder: Path, data_dir: Path | None, max_rows: int | None = None, split: Split | None = None
) -> ModelCard:
    """Compute the profile of the version in `folder`, write it and list it in the card."""
    card = ModelCard.read(folder)
    split = split or load_split(card.name, data_dir, max_rows)
    rows = serving_rows(split.x_train)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `profile` command's arguments."""
    parser.add_argument("folders", nargs="+", type=Path, help="models/<name>/<version> folders")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist.npz and aclImdb_train.tar.gz (omit to download)",
    )


def run(args: argparse.Namespace) -> int:
    """`python -m training profile FOLDER...`: exit 0 when every profile was written."""
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
