"""scikit-learn against ONNX Runtime per call, for each scikit-learn model of a repository.

Each model version is loaded as the server loads it (`load_model`, its input kind, then
`app.repository.loading.accelerate`), and one call of 1, 10 and 64 rows (the kind's generated
check rows) is timed on each engine, alternating, the fastest of `--runs` calls per round
(wall microseconds of one call on one thread; the fastest call is the least
disturbed by the rest of the machine). Prints a Markdown table.

Then, for each, where the engines' answers differ: on a grid at the resolution of the card's
examples over the training range (real measurements come at such a resolution, and a k-NN's
ties at the k-th distance happen on it) and on a million uniform rows over the same range.

    python bench/onnx_engine.py [--models-dir models] [--rounds 3] [--runs 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 10, 64)


def _best_us(compute: Any, batch: Any, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        compute(batch)
        best = min(best, time.perf_counter() - started)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from app.kinds import kind_of
    from app.repository.loading import (
        CHECK_ROWS,
        CHECK_SEED,
        accelerate,
        example_rows,
        input_limits,
    )
    from app.runtimes import load_model
    from app.schemas.card import ModelCard
    from app.settings import Settings

    limits = input_limits(Settings(_env_file=None).limits)
    print("| model | engine | rows | scikit-learn us | ONNX Runtime us | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    compared: list[str] = []
    for folder in sorted(args.models_dir.glob("*/[0-9]*")):
        card = ModelCard.read(folder)
        if card.framework != "sklearn":
            continue
        model: Any = load_model(card, folder, max_batch_size=64)
        adapter = kind_of(card)(card, folder, limits)
        adapter.load()
        accelerate(model, adapter)
        name = f"{card.name}/{card.version}"
        if model.engine is None:
            print(f"| {name} | scikit-learn (not converted: see the log) | | | | |")
            continue
        generated = adapter.check_rows(example_rows(adapter), CHECK_ROWS, CHECK_SEED)
        rows = adapter.featurize(generated or [])
        for size in BATCH_SIZES:
            batch = rows[:size]
            sklearn_us, onnx_us = [], []
            for _ in range(args.rounds):
                sklearn_us.append(_best_us(model._predict_with_sklearn, batch, args.runs))
                onnx_us.append(_best_us(model.predict, batch, args.runs))
            low_sk, low_onnx = min(sklearn_us), min(onnx_us)
            print(
                f"| {name} | {model.engine.split(' (')[0]} | {size} | {low_sk:,.0f} "
                f"| {low_onnx:,.0f} | {low_sk / low_onnx:.1f}x |"
            )
        compared += differences(model, adapter, card)
    print()
    print("| model | rows | count | other outputs (> 1e-6) | largest difference | other label |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(compared))


def differences(model: Any, adapter: Any, card: Any) -> list[str]:
    """Table rows: how many grid and uniform rows get other outputs (> 1e-6) or labels."""
    import numpy as np

    low, high = adapter._low, adapter._high  # the card's training range with its margin
    if low is None or high is None:
        return []
    decimals = max(
        len(f"{float(v):g}".partition(".")[2])
        for example in card.examples
        for v in (example.instance.values() if isinstance(example.instance, dict) else [])
    )
    step = 10.0**-decimals
    while np.prod(np.floor((high - low) / step) + 1) > 3e6:  # at most a few million rows
        step *= 2
    # On the measurements' own grid (multiples of the step), where ties happen.
    axes = [
        np.arange(np.ceil(a / step), np.floor(b / step) + 1) * step
        for a, b in zip(low, high, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes), -1).reshape(-1, len(axes)).astype(np.float32)
    uniform = np.random.default_rng(0).uniform(low, high, (1_000_000, len(axes)))
    rows = []
    for name, batch in ((f"grid, step {step:g}", grid), ("uniform", uniform.astype(np.float32))):
        onnx, sklearn = model.predict(batch), model._predict_with_sklearn(batch)
        differ = np.abs(onnx - sklearn).max(axis=1) > 1e-6
        flips = onnx.argmax(axis=1) != sklearn.argmax(axis=1)
        rows.append(
            f"| {card.name}/{card.version} | {name} | {len(batch):,} | {int(differ.sum()):,} "
            f"| {float(np.abs(onnx - sklearn).max()):.3g} | {int(flips.sum()):,} |"
        )
    return rows


if __name__ == "__main__":
    main()
