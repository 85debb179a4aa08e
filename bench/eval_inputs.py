"""Issue 12's figures: accuracy on photo-like digits, on plain arrays and clean PNGs, and the
calibration (ECE) of every served model. Prints tables; quality, not speed.

    python bench/eval_inputs.py [--photos 1000] [--seed 12] [--models-dir models]
                                [--skip-clean] [--skip-calibration]

Photo-like images come from `training/photo_like.py` applied to the MNIST *test* digits (the
training augmentation draws from the train digits) and go through the server's own path:
`ImageAdapter.image_to_row` (decode, `to_mnist`), then the served model's runtime. ECE: 15
equal-width bins on the top probability, on each model's held-out split; "before" is read
from the card (the uncalibrated model is not served), "after" is recomputed here.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image

from app.adapters import InputAdapter, make_adapter
from app.errors import ServingError
from app.runtimes import load_model
from app.runtimes.keras import configure_backend
from app.schemas.card import ModelCard
from training.calibration import reliability
from training.photo_like import photo_like
from training.splits import held_out_sets

ROOT = Path(__file__).resolve().parents[1]


def load(models_dir: Path, name: str) -> tuple[ModelCard, Any, InputAdapter]:
    """The latest version of a model, loaded as the server loads it."""
    folder = max(
        (p for p in (models_dir / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    card = ModelCard.read(folder)
    model = load_model(card, folder, buckets=(1, 64, 256))
    return card, model, make_adapter(card, folder, max_image_pixels=10**8)


def probabilities_of(model: Any, adapter: InputAdapter, rows: list[Any]) -> np.ndarray:
    """Served probabilities (N, C) for rows, 256 at a time."""
    return np.concatenate(
        [model.predict(adapter.featurize(rows[i : i + 256])) for i in range(0, len(rows), 256)]
    )


def _png(array: np.ndarray, scale: int = 1) -> bytes:
    image = Image.fromarray(array.astype(np.uint8))
    if scale > 1:
        image = image.resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_rows(adapter: Any, files: list[bytes]) -> tuple[list[Any], list[int], float]:
    """Rows through the serving image path; indices refused (4xx); mean ms per image."""
    rows, refused = [], []
    started = time.perf_counter()
    for index, data in enumerate(files):
        try:
            rows.append(adapter.image_to_row(data))
        except ServingError:
            refused.append(index)
            rows.append(np.zeros((28, 28), np.float32))
    return rows, refused, (time.perf_counter() - started) * 1000 / max(1, len(files))


def mnist_tables(
    models_dir: Path, data_dir: Path, photos: int, seed: int, clean: bool = True
) -> None:
    card, model, adapter = load(models_dir, "mnist-cnn")
    data = np.load(data_dir / "mnist.npz")
    x_test, y_test = data["x_test"], data["y_test"]
    print(f"\nmnist-cnn version {card.version}: accuracy by input route\n")
    print("| route | images | accuracy | refused (4xx) | preprocessing ms/image |")
    print("|---|---:|---:|---:|---:|")

    def report(route: str, rows: list[Any], labels: np.ndarray, refused: list[int], ms: float):
        predicted = probabilities_of(model, adapter, rows).argmax(axis=1)
        predicted[refused] = -1  # a refusal is not a right answer
        accuracy = float((predicted == labels).mean())
        print(f"| {route} | {len(rows)} | {accuracy:.4f} | {len(refused)} | {ms:.1f} |")
        return predicted

    if clean:
        started = time.perf_counter()
        grids = [adapter.to_row(image.astype(np.float32)) for image in x_test]
        ms = (time.perf_counter() - started) * 1000 / len(grids)
        report("plain 0-255 arrays", grids, y_test, [], ms)
        scaled = [adapter.to_row((image / 255.0).astype(np.float32)) for image in x_test]
        report("0-1 scaled arrays", scaled, y_test, [], ms)
        rows, refused, ms = image_rows(adapter, [_png(image) for image in x_test])
        report("clean PNG 28x28, white on black", rows, y_test, refused, ms)
        rows, refused, ms = image_rows(adapter, [_png(255 - image, 4) for image in x_test])
        report("clean PNG 112x112, black on white", rows, y_test, refused, ms)
    if photos <= 0:
        return

    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(x_test), size=min(photos, len(x_test)), replace=False)
    generated = [photo_like(x_test[i], rng) for i in chosen]
    labels = y_test[chosen]
    rows, refused, ms = image_rows(adapter, [p.data for p in generated])
    predicted = report(f"photo-like (seed {seed}), 800x600 to 2000x1500", rows, labels, refused, ms)
    by_format: dict[str, list[bool]] = defaultdict(list)
    for photo, guess, label in zip(generated, predicted, labels, strict=True):
        by_format[photo.format].append(bool(guess == label))
        by_format[f"{photo.size[0]}x{photo.size[1]}"].append(bool(guess == label))
    print("\n| photo-like subset | images | accuracy |\n|---|---:|---:|")
    for key, hits in sorted(by_format.items()):
        print(f"| {key} | {len(hits)} | {np.mean(hits):.4f} |")


def calibration_table(models_dir: Path, data_dir: Path) -> None:
    print("\nCalibration on each model's held-out split (ECE: 15 bins on the top probability)\n")
    print("| model | version | held out | accuracy | ECE before | ECE after (served) | method |")
    print("|---|---:|---|---:|---:|---:|---|")
    reliabilities = {}
    for name, (instances, labels, split) in held_out_sets(data_dir).items():
        card, model, adapter = load(models_dir, name)
        rows = [adapter.to_row(instance) for instance in instances]
        probabilities = probabilities_of(model, adapter, rows)
        ece, table = reliability(labels, probabilities)
        accuracy = float((probabilities.argmax(axis=1) == labels).mean())
        calibration = card.calibration
        before = f"{calibration.ece_before:.4f}" if calibration else f"{ece:.4f}"
        method = calibration.method if calibration else "none"
        print(
            f"| {name} | {card.version} | {split} ({len(labels)}) | {accuracy:.4f} | {before} | "
            f"{ece:.4f} | {method} |"
        )
        reliabilities[name] = table
    for name, table in reliabilities.items():
        print(f"\n{name} reliability (served):\n")
        print("| bin | count | mean confidence | accuracy |\n|---|---:|---:|---:|")
        for row in table:
            if row.count:
                print(
                    f"| ({row.low:.3f}, {row.high:.3f}] | {row.count} | "
                    f"{row.mean_confidence:.4f} | {row.accuracy:.4f} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--skip-calibration", action="store_true")
    parser.add_argument("--skip-clean", action="store_true", help="only the photo-like images")
    args = parser.parse_args()
    configure_backend(len(os.sched_getaffinity(0)))
    mnist_tables(args.models_dir, args.data_dir, args.photos, args.seed, not args.skip_clean)
    if not args.skip_calibration:
        calibration_table(args.models_dir, args.data_dir)


if __name__ == "__main__":
    main()
