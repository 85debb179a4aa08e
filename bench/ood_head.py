"""Issue 23, third round, idea 1: does a supervised "digit or not" head on mnist-cnn's frozen
penultimate features warn more non-digits than the energy score, at the same in-domain budget?

    python bench/ood_head.py [--count 200] [--seed 7] [--models-dir models]

The head: a logistic regression (scikit-learn, standardised 128-d features, classes weighted
equally) fitted on in-domain digits (the MNIST training images and the digit families of
`training/digit_families.py` drawn from the *training* digits at seed 1001, without the
load_digits family the benches draw from) against the *training* split of
`training/outliers.py` at seed 2001 (DejaVu fonts, other scripts, shapes, scribbles; never
the held-out fonts). Each score's threshold is chosen as `training/ood.py` chooses the energy
threshold, on in-domain data only: the smallest warning at most 0.8% of the MNIST test digits
and 1% of the pooled digit families read at least 95% right (x_test, seed 42, the card's).
"OR" warns when either score does, each at half that budget (99.6% / 99.5%).

Evaluated on the bench's draw (`bench/ood_families.py`: the held-out split of
`training/outliers.py`, same seed and count, so the same images): the share warned by each
score (a refusal, 4xx, and a `several_digits` warning count as caught, as in the bench).
Nothing is written; the served card is not changed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.errors import ServingError
from app.kinds.image import energy_scores
from app.preprocessing.image import images_to_model_input
from bench.eval_inputs import load
from training.digit_families import families as digit_families
from training.digit_families import png, read_labelled, read_sample
from training.outliers import families as outlier_families
from training.outliers import training_outliers

ROOT = Path(__file__).resolve().parents[1]
FIT_SEED, OUTLIER_SEED, CALIBRATION_SEED = 1001, 2001, 42
Score = Callable[[np.ndarray], np.ndarray]


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="images per held-out family")
    parser.add_argument("--seed", type=int, default=7, help="the bench's seed")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    card, model, adapter = load(args.models_dir, "mnist-cnn")
    data = np.load(args.data_dir / "mnist.npz")
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    folder = max(
        (p for p in (args.models_dir / "mnist-cnn").iterdir() if p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    assert card.out_of_domain is not None and card.out_of_domain.embedding_statistics_file
    with np.load(folder / card.out_of_domain.embedding_statistics_file) as saved:
        kernel, bias = np.asarray(saved["kernel"]), np.asarray(saved["bias"])

    def embed(rows: Any) -> tuple[np.ndarray, np.ndarray]:
        batch = np.asarray(rows, dtype=np.float32)
        parts = [
            model.predict_embedded(images_to_model_input(batch[i : i + 256]))
            for i in range(0, len(batch), 256)
        ]
        return (
            np.concatenate([p[1] for p in parts]).astype(np.float64),
            np.concatenate([p[0] for p in parts]),
        )

    def read(samples: list[tuple[str, Any]]) -> tuple[list[Any], int]:
        rows, refused = [], 0
        for route, payload in samples:
            try:
                rows.append(read_sample(adapter, route, payload))
            except ServingError:
                refused += 1
        return rows, refused

    # Fit: in-domain digits (training images, families of training digits) vs training outliers.
    inside = [embed(x_train)[0]]
    for name, samples in digit_families(x_train, y_train, 300, FIT_SEED):
        if name.startswith(("load_digits", "clean grid")):
            continue
        inside.append(embed(read([(r, p) for r, p, _ in samples])[0])[0])
    fit_in = np.concatenate(inside)
    fit_out = embed(training_outliers(x_train, 6000, OUTLIER_SEED))[0]
    x = np.vstack([fit_in, fit_out])
    y = np.r_[np.zeros(len(fit_in)), np.ones(len(fit_out))]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = LogisticRegression(C=0.01, max_iter=3000, class_weight="balanced").fit(
            (x - mean) / scale, y
        )
    weights, intercept = (
        head.coef_[0] / scale,
        float(head.intercept_[0] - head.coef_[0] @ (mean / scale)),
    )

    # Calibration data: in-domain only, as training/ood.py.
    test = embed(x_test)[0]
    pooled_parts = []
    for _, samples in digit_families(x_test, y_test, 200, CALIBRATION_SEED):
        rows, truth = read_labelled(adapter, samples)
        features, probabilities = embed(rows)
        if (probabilities.argmax(axis=1) == np.asarray(truth)).sum() / len(samples) >= 0.95:
            pooled_parts.append(features)
    pooled = np.concatenate(pooled_parts)

    scores: dict[str, Score] = {
        "energy": lambda f: energy_scores(f, kernel, bias),
        "head": lambda f: f @ weights + intercept,
    }

    def limit(score: Score, test_q: float, pooled_q: float) -> float:
        return float(
            max(np.percentile(score(test), test_q), np.percentile(score(pooled), pooled_q))
        )

    full = {name: limit(s, 99.2, 99.0) for name, s in scores.items()}
    half = {name: limit(s, 99.6, 99.5) for name, s in scores.items()}
    rules: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        f"energy > {full['energy']:.3f}": lambda f: scores["energy"](f) > full["energy"],
        f"head > {full['head']:.3f}": lambda f: scores["head"](f) > full["head"],
        f"OR: energy > {half['energy']:.3f} or head > {half['head']:.3f}": lambda f: (
            (scores["energy"](f) > half["energy"]) | (scores["head"](f) > half["head"])
        ),
    }
    rng = np.random.default_rng(args.seed)
    held_out = {}
    for name, make in outlier_families("held-out", x_test, rng).items():
        rows, refused = read([("file", png(make())) for _ in range(args.count)])
        several = np.array([bool(getattr(row, "other_digits", 0)) for row in rows])
        held_out[name] = (embed(rows)[0], several, refused)
    print(f"mnist-cnn version {card.version}; fit {len(fit_in)} digits, {len(fit_out)} outliers")
    print(f"held-out families: {args.count} images each, seed {args.seed} (bench's draw)\n")
    print("| rule | MNIST test | pooled families | " + " | ".join(held_out) + " |")
    print("|---|---:|---:|" + "---:|" * len(held_out))
    for rule_name, rule in rules.items():
        cells = [f"{rule(test).mean():.3f}", f"{rule(pooled).mean():.3f}"]
        for features, several, refused in held_out.values():
            caught = int((rule(features) | several).sum()) + refused
            cells.append(f"{caught / args.count:.3f}")
        print(f"| {rule_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
