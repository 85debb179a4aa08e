"""Dataset loaders: the standard download on a connected machine, a local copy offline.

Every loader returns the arrays plus a `DataSource` (where the data came from and the sha256 of
what was used), which goes into the model card.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.schemas.card import sha256_file

MNIST_FILE = "mnist.npz"
IMDB_ARCHIVES = ("aclImdb_train.tar.gz", "aclImdb_v1.tar.gz")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_LABELS = ("negative", "positive")


class DataError(Exception):
    """A dataset is missing or unreadable; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class DataSource:
    """Provenance of a dataset, as recorded in the model card."""

    description: str
    sha256: str


def sha256_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the raw bytes of arrays, for data generated in memory."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: DataSource


def load_mnist(data_dir: Path | None) -> Mnist:
    """MNIST from `data_dir/mnist.npz` (Keras layout), else `keras.datasets.mnist.load_data()`."""
    if data_dir is not None:
        path = data_dir / MNIST_FILE
        if not path.is_file():
            raise DataError(
                f"{path} not found: --data-dir must hold {MNIST_FILE} in the Keras layout "
                "(x_train, y_train, x_test, y_test); omit --data-dir on a connected machine to "
                "download it with keras.datasets.mnist.load_data()"
            )
    else:
        import keras

        try:
            path = Path(
                keras.utils.get_file(
                    MNIST_FILE,
                    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                )
            )
        except Exception as exc:
            raise DataError(
                f"could not download MNIST ({exc}); pass --data-dir with a local {MNIST_FILE}"
            ) from exc
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path} is not a readable MNIST archive ({type(exc).__name__}: {exc}); replace it "
            "with the Keras mnist.npz"
        ) from exc
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{path}: x_{split} must be (N, 28, 28) with N labels")
    return Mnist(
        arrays["x_train"],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].astype(np.int64),
        DataSource(
            f"MNIST ({path.name}: {len(arrays['x_train'])} train, "
            f"{len(arrays['x_test'])} test images)",
            sha256_file(path),
        ),
    )


@dataclass(frozen=True)
class Reviews:
    texts: list[str]
    labels: np.ndarray  # 0 negative, 1 positive
    source: DataSource


def _find_imdb(data_dir: Path) -> Path:
    for name in IMDB_ARCHIVES:
        if (data_dir / name).is_file():
            return data_dir / name
    if (data_dir / "aclImdb" / "train").is_dir():
        return data_dir / "aclImdb"
    raise DataError(
        f"no IMDb data in {data_dir}: expected {' or '.join(IMDB_ARCHIVES)} or an extracted "
        f"aclImdb/train/{{pos,neg}} folder; download {IMDB_URL} or omit --data-dir on a "
        "connected machine"
    )


def _label_of(member: str) -> int | None:
    parts = member.split("/")
    # aclImdb/train/pos/123_9.txt -> positive; test split and unsup reviews are not used.
    if len(parts) == 4 and parts[1] == "train" and parts[3].endswith(".txt"):
        return {"neg": 0, "pos": 1}.get(parts[2])
    return None


def load_imdb(data_dir: Path | None) -> Reviews:
    """The official aclImdb train split (25,000 labelled reviews), sorted by file name."""
    if data_dir is None:
        import keras

        try:
            archive = Path(keras.utils.get_file("aclImdb_v1.tar.gz", IMDB_URL))
        except Exception as exc:
            raise DataError(
                f"could not download IMDb ({exc}); pass --data-dir with {IMDB_ARCHIVES[0]}"
            ) from exc
    else:
        archive = _find_imdb(data_dir)

    rows: list[tuple[str, str, int]] = []
    if archive.is_dir():
        for path in sorted(archive.glob("train/*/*.txt")):
            label = _label_of(f"aclImdb/{path.relative_to(archive).as_posix()}")
            if label is not None:
                rows.append((path.name, path.read_text(encoding="utf-8"), label))
        digest = sha256_arrays(np.array([name for name, _, _ in rows]))
    else:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    label = _label_of(member.name)
                    if label is None or not member.isfile():
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None
                    rows.append((member.name, handle.read().decode("utf-8"), label))
        except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{archive} is not a readable aclImdb archive ({type(exc).__name__}: {exc}); "
                f"download it again from {IMDB_URL}"
            ) from exc
        digest = sha256_file(archive)
    if not rows:
        raise DataError(f"{archive} holds no aclImdb/train/{{pos,neg}}/*.txt reviews")
    rows.sort(key=lambda row: row[0])
    labels = np.array([label for _, _, label in rows], dtype=np.int64)
    if len(set(labels.tolist())) != 2:
        raise DataError(f"{archive} must hold both positive and negative train reviews")
    return Reviews(
        [text for _, text, _ in rows],
        labels,
        DataSource(
            f"Large Movie Review Dataset v1.0 train split ({archive.name}, {len(rows)} reviews)",
            digest,
        ),
    )
