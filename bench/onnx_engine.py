"""scikit-learn against ONNX Runtime per call, for each scikit-learn model of a repository.

Each model version is loaded as the server loads it (`load_model`, its input kind, then
`app.repository.loading.accelerate`), and one call of 1, 10 and 64 rows (the kind's generated
check rows) is timed on each engine, alternating, the fastest of `--runs` calls per round
(wall microseconds of one call on one thread; the fastest call is the least
disturbed by the rest of the machine). Prints a Markdown table.

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
    from app.repository.loading import CHECK_ROWS, CHECK_SEED, accelerate, input_limits
    from app.runtimes import load_model
    from app.schemas.card import ModelCard
    from app.settings import Settings

    limits = input_limits(Settings(_env_file=None).limits)  # type: ignore[call-arg]
    print("| model | engine | rows | scikit-learn us | ONNX Runtime us | ratio |")
    print("|---|---|---:|---:|---:|---:|")
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
        rows = adapter.featurize(adapter.check_rows(CHECK_ROWS, CHECK_SEED))
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


if __name__ == "__main__":
    main()
