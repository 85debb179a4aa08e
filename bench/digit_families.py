"""Issue 23's image figures: accuracy of the served mnist-cnn per family of digit images.

    python bench/digit_families.py [--count 500] [--seed 23] [--models-dir models]

Every family is generated here from digits the model never trained on: the MNIST *test*
digits (`../shared/data/mnist.npz`) and scikit-learn's `load_digits` (1,797 real 8x8
handwritten digits from another data set, UCI's "optdigits": a stand-in for a held-back set).
Each image goes the way a client sends it (a PNG file, or a 28x28 grid of numbers) through the
server's own path (`ImageAdapter.image_to_row` / `to_row`, then `featurize` and the runtime).
A refusal (4xx, "looks blank") counts as a wrong answer.

Families:
- clean: MNIST test grids as numbers, and as 28x28 PNG files;
- photo-like: `training/photo_like.py` (the issue-12 generator), 800x600 to 2000x1500;
- low-res N px (N = 8, 12, 16, 28): the digit shrunk to N px (INTER_AREA), half of them
  cropped tight (touching the frame), then upscaled to 16-260 px by nearest, bilinear or
  bicubic interpolation (a thumbnail or a low-DPI scan), dark ink on paper;
- load_digits 8 px: the real 8x8 digits, upscaled the same way;
- blurred: a 112-224 px dark-on-light digit with soft grey ink, Gaussian blur sigma 2-5% of
  the side (an out-of-focus photo);
- hard shadow: a digit on paper with a straight shadow edge across it, the shaded side at
  35-65% of the light (a hand or a phone over the page);
- inverted grid: black on white 28x28 grids sent as numbers: the MNIST grid inverted, and a
  scan-like crop (the digit's box plus a small margin, resized to fill 28x28);
- inverted grid as PNG: the same scan-like grids as PNG files (must agree with the grids).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.errors import ServingError
from bench.eval_inputs import load, probabilities_of
from training.digit_families import families, read_sample

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500, help="images per family")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    card, model, adapter = load(args.models_dir, "mnist-cnn")
    data = np.load(args.data_dir / "mnist.npz")
    print(f"mnist-cnn version {card.version}, {args.count} images per family, seed {args.seed}\n")
    print("| family | images | accuracy | refused (4xx) | ms/image |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in families(data["x_test"], data["y_test"], args.count, args.seed):
        rows, refused = [], 0
        started = time.perf_counter()
        for route, payload, _ in samples:
            try:
                rows.append(read_sample(adapter, route, payload))
            except ServingError:
                refused += 1
                rows.append(None)
        ms = (time.perf_counter() - started) * 1000 / len(samples)
        kept = [row for row in rows if row is not None]
        predicted = iter(
            probabilities_of(model, adapter, kept).argmax(axis=1).tolist() if kept else []
        )
        right = sum(
            1
            for row, (_, _, label) in zip(rows, samples, strict=True)
            if row is not None and next(predicted) == label
        )
        print(f"| {name} | {len(samples)} | {right / len(samples):.3f} | {refused} | {ms:.1f} |")


if __name__ == "__main__":
    main()
