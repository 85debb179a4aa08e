"""Each project model's train / held-out split, defined once.

The trainers fit on `x_train` and report their card's metrics on the held-out rows; drift
profiles (`training.profile`), backfills (`training.backfill`), the out-of-domain calibration
(`training.ood`) and the eval scripts (`held_out_sets`) take the very same rows from here, so
a changed split changes all of them together.

    iris-knn        Iris, 80/20 stratified (seed 42)                    held out: "test"
    binary-mlp      make_classification(1000, 20 features), 70/30 strat. held out: "test"
    mnist-cnn       MNIST's official train / test images                held out: "test"
    imdb-sentiment  IMDb's official train reviews, 80/20 stratified      held out: "validation"

`max_rows` (smoke runs, tests) keeps the first rows of the training split (IMDb: a seeded
sample of the reviews before splitting); the held-out rows of the tabular and image models do
not change with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.model_selection import train_test_split

from training.data import IMDB_LABELS, DataSource, load_imdb, load_mnist, sha256_arrays

SPLIT_SEED = 42  # the seed of every split above (not the training seed)
BINARY_MLP_FEATURES = 20


@dataclass(frozen=True)
class Split:
    """A model's data as its trainer splits it.

    x_train / x_test: float rows (N, F), uint8 images (N, 28, 28) or review texts (list[str]);
    y_train / y_test: class indices (N,) into `labels`; `evaluated_on`: the held-out split's
    name in the card's metrics; `source`: the whole data's provenance and sha256.
    """

    x_train: Any
    y_train: np.ndarray
    x_test: Any
    y_test: np.ndarray
    labels: tuple[str, ...]
    evaluated_on: str
    source: DataSource


def iris_split(data_dir: Path | None = None, max_rows: int | None = None) -> Split:
    """Iris (150 flowers, 4 lengths in cm, float64), 80/20 stratified."""
    iris = load_iris()
    x, y = iris.data.astype(np.float64), iris.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=SPLIT_SEED
    )
    return Split(
        x_train[:max_rows],
        y_train[:max_rows],
        x_test,
        y_test,
        tuple(str(n) for n in iris.target_names),
        "test",
        DataSource("Iris as bundled with scikit-learn", sha256_arrays(x, y)),
    )


def binary_mlp_split(data_dir: Path | None = None, max_rows: int | None = None) -> Split:
    """1,000 synthetic rows of 20 float32 features (make_classification), 70/30 stratified."""
    x, y = make_classification(
        n_samples=1000, n_features=BINARY_MLP_FEATURES, n_classes=2, random_state=SPLIT_SEED
    )
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=SPLIT_SEED
    )
    return Split(
        x_train[:max_rows],
        y_train[:max_rows],
        x_test,
        y_test,
        ("0", "1"),
        "test",
        DataSource("sklearn.datasets.make_classification", sha256_arrays(x, y)),
    )


def mnist_split(data_dir: Path | None, max_rows: int | None = None) -> Split:
    """MNIST's official 60,000 train and 10,000 test images (uint8, 0-255). Raises DataError."""
    data = load_mnist(data_dir)
    return Split(
        data.x_train[:max_rows],
        data.y_train[:max_rows],
        data.x_test,
        data.y_test,
        tuple(str(d) for d in range(10)),
        "test",
        data.source,
    )


def imdb_split(data_dir: Path | None, max_rows: int | None = None, seed: int = SPLIT_SEED) -> Split:
    """IMDb's official 25,000 train reviews, 80/20 stratified; with `max_rows`, a sample of
    that many reviews (drawn with `seed`) is split instead. Raises DataError."""
    reviews = load_imdb(data_dir)
    indices = np.arange(len(reviews.texts))
    if max_rows:
        indices = np.random.RandomState(seed).permutation(indices)[:max_rows]
    train_idx, held_out_idx = train_test_split(
        indices, test_size=0.2, stratify=reviews.labels[indices], random_state=SPLIT_SEED
    )
    return Split(
        [reviews.texts[i] for i in train_idx],
        reviews.labels[train_idx],
        [reviews.texts[i] for i in held_out_idx],
        reviews.labels[held_out_idx],
        IMDB_LABELS,
        "validation",
        reviews.source,
    )


SPLITS: dict[str, Callable[[Path | None, int | None], Split]] = {
    "iris-knn": iris_split,
    "binary-mlp": binary_mlp_split,
    "mnist-cnn": mnist_split,
    "imdb-sentiment": imdb_split,
}


def load_split(name: str, data_dir: Path | None, max_rows: int | None = None) -> Split:
    """The split of project model `name`; raises ValueError for another name, DataError when
    its data cannot be read."""
    if name not in SPLITS:
        raise ValueError(f"no known training data for model {name!r}")
    return SPLITS[name](data_dir, max_rows)


def held_out_set(name: str, data_dir: Path | None) -> tuple[list[object], np.ndarray, str]:
    """One model's held-out rows as the eval scripts send them: (instances, labels, split
    name); tabular rows as lists of floats, images as float32 arrays, reviews as texts.
    KeyError for a name training does not know."""
    split = SPLITS[name](data_dir, None)
    instances: list[object]
    if isinstance(split.x_test, list):
        instances = list(split.x_test)
    elif split.x_test.ndim == 2:
        instances = [list(row) for row in split.x_test]
    else:
        instances = [image.astype(np.float32) for image in split.x_test]
    return instances, np.asarray(split.y_test), split.evaluated_on


def held_out_sets(data_dir: Path | None) -> dict[str, tuple[list[object], np.ndarray, str]]:
    """`held_out_set` of every model training knows."""
    return {name: held_out_set(name, data_dir) for name in SPLITS}
