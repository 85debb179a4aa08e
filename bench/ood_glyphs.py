"""Issue 23's out-of-domain misses, glyph by glyph: the share of each held-out letter and
symbol that mnist-cnn's served path warns (or refuses), printed and hand-drawn-like.

    python bench/ood_glyphs.py [--count 24] [--seed 5] [--models-dir models]

The glyphs and their drawing are `training/outliers.py`'s held-out split (Liberation fonts and
Pillow's bundled font; never trained on); `bench/ood_families.py` gives the families' totals.
Sorted from the least warned: the top of each list is what the warning misses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.eval_inputs import load
from training.digit_families import png
from training.ood import image_warnings
from training.outliers import HELD_OUT_FONTS, LETTERS, SYMBOLS, _fonts, glyph

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=24, help="images per glyph and style")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    _, model, adapter = load(args.models_dir, "mnist-cnn")
    fonts = _fonts(HELD_OUT_FONTS)
    rng = np.random.default_rng(args.seed)
    for hand in (False, True):
        shares: dict[str, float] = {}
        for text in LETTERS + SYMBOLS:
            samples = [
                ("file", png(glyph(text, fonts, rng, hand=hand, bundled=True)))
                for _ in range(args.count)
            ]
            warned, refused = image_warnings(model, adapter, samples)
            shares[text] = (warned + refused) / args.count
        letters = np.mean([shares[c] for c in LETTERS])
        symbols = np.mean([shares[c] for c in SYMBOLS])
        style = "hand-drawn-like" if hand else "printed"
        print(f"\n{style}: letters {letters:.3f} warned, symbols {symbols:.3f} warned")
        print("| glyph | warned |\n|---|---:|")
        for text, share in sorted(shares.items(), key=lambda item: item[1]):
            print(f"| `{text}` | {share:.2f} |")


if __name__ == "__main__":
    main()
