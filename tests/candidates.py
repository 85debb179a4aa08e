"""Candidate versions of iris-knn for the promotion tests: a copy of version 1, or one refit
on labels partly made wrong (a candidate trained to be worse)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris

from app.schemas.card import sha256_file

IRIS = load_iris()


def add_version(
    models: Path, version: int, shuffled_share: float = 0.0, source_version: int = 1
) -> None:
    """Copy iris-knn `source_version` in as `version`; with `shuffled_share`, refit it on Iris
    with that share of the labels, chosen at random, moved to the next class (label noise:
    a candidate trained to be worse; 0.4 costs KNN about a third of its accuracy)."""
    source = models / "iris-knn" / str(source_version)
    staging = models / "iris-knn" / f".{version}.tmp"
    shutil.copytree(source, staging)
    card = json.loads((staging / "card.json").read_text())
    card["version"] = version
    if shuffled_share:
        estimator = joblib.load(staging / card["model_file"])
        rng = np.random.default_rng(7)
        y = IRIS.target.copy()
        chosen = rng.choice(len(y), int(shuffled_share * len(y)), replace=False)
        y[chosen] = (y[chosen] + 1) % 3  # those rows all carry a wrong label
        estimator.fit(IRIS.data, y)
        joblib.dump(estimator, staging / card["model_file"])
        card["artifacts"][card["model_file"]] = sha256_file(staging / card["model_file"])
        for example in card["examples"]:
            example["probabilities"] = None  # the refit model answers differently
    (staging / "card.json").write_text(json.dumps(card))
    staging.rename(models / "iris-knn" / str(version))
