"""Issue 23's out-of-domain figures for mnist-cnn: the share of each image family warned by
the served model (any warning: `unlike_training_images`, `several_digits`; a refusal, 4xx,
counts as caught for a non-digit and as warned for a digit).

    python bench/ood_families.py [--count 300] [--seed 7] [--models-dir models]

In-domain: the digit families of `bench/digit_families.py` (MNIST test digits and
scikit-learn's load_digits, clean, photo-like, low resolution, blurred, hard shadows,
inverted grids). Out-of-domain: the held-out split of `training/outliers.py` (Liberation
fonts and Pillow's bundled font, printed and hand-drawn-like letters, symbols, textures
including kinds training never saw, test digits side by side, blank-ish noise), none of
which mnist-cnn trained on, and the families `training/ood.py` calibrated on before
(Pillow's font letters and symbols, stripes/blobs/checkerboards) for comparison. The seed
differs from the calibration's (23), so these are other images than the thresholds saw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.eval_inputs import load
from training.digit_families import families as digit_families
from training.digit_families import png
from training.ood import image_families, image_warnings
from training.outliers import families as outlier_families

ROOT = Path(__file__).resolve().parents[1]


def share_warned(model: Any, adapter: Any, samples: list[tuple[str, Any]]) -> float:
    """Share of (route, payload) samples refused or warned by the served path."""
    warned, refused = image_warnings(model, adapter, samples)
    return (warned + refused) / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300, help="images per family")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    card, model, adapter = load(args.models_dir, "mnist-cnn")
    checks = card.out_of_domain
    data = np.load(args.data_dir / "mnist.npz")
    print(f"mnist-cnn version {card.version}: {checks.method if checks else 'no checks'}")
    print(f"{args.count} images per family, seed {args.seed}\n")
    print("| family | kind | images | warned |\n|---|---|---:|---:|")
    for name, samples in digit_families(data["x_test"], data["y_test"], args.count, args.seed):
        pairs = [(route, payload) for route, payload, _ in samples]
        print(f"| {name} | digits | {len(pairs)} | {share_warned(model, adapter, pairs):.3f} |")
    rng = np.random.default_rng(args.seed)
    for name, make in outlier_families("held-out", data["x_test"], rng).items():
        pairs = [("file", png(make())) for _ in range(args.count)]
        print(f"| {name} | non-digits | {len(pairs)} | {share_warned(model, adapter, pairs):.3f} |")
    for name, files in image_families(data["x_test"], rng, args.count).items():
        pairs = [("file", data) for data in files]
        print(
            f"| {name} (training.ood's) | non-digits | {len(pairs)} | "
            f"{share_warned(model, adapter, pairs):.3f} |"
        )


if __name__ == "__main__":
    main()
