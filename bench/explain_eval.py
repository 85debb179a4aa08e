"""Issue 16 figures: explanation latency per model, and sanity checks of what they say.

    nice -n 10 python bench/explain_eval.py [--digits 500] [--reviews 500] [--latency-n 100]

On the committed models (the newest version of each), on the default Keras backend (JAX):
1. Latency of one explanation of one instance through the HTTP app (in-process ASGI, so no
   sockets), p50 and p99 over the card examples in turn, after one warm-up call.
2. Predictions at concurrency 16 (mnist-cnn, one digit a request), p99 without and with
   explanations running back to back.
3. MNIST: on held-out test digits, the share of absolute attribution inside the digit's
   pixels (grey > 0), and inside its strong strokes (grey >= 128) against those strokes'
   share of the ink.
4. IMDb: on held-out reviews (the trainer's 20% split: training/imdb_sentiment.py), how much
   the predicted class's probability drops when the 5 words with the largest attribution are
   removed, against 5 random words of the same review. The reviews are cached in /tmp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment")
CACHE = Path("/tmp/synergy-explain-eval-imdb-heldout.json")


def percentiles_ms(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(values) * 1000, [50, 99])
    return float(p50), float(p99)


async def http_figures(models_dir: Path, latency_n: int, load_requests: int) -> dict[str, Any]:
    import httpx

    from app.main import create_app
    from app.repository import ModelRegistry, VersionPolicy
    from app.settings import Settings

    settings = Settings(_env_file=None, models_dir=models_dir, log_requests=False)  # type: ignore[call-arg]
    app = create_app(settings)
    cards = {e.name: e.card for e in ModelRegistry.scan(models_dir, VersionPolicy()).entries}
    figures: dict[str, Any] = {"latency": {}, "versions": {}}
    async with app.router.lifespan_context(app):
        await app.state.service.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120
        ) as client:
            for name in MODELS:
                card = cards[name]
                assert card is not None
                figures["versions"][name] = card.version
                bodies = [{"instances": [e.instance]} for e in card.examples]
                await client.post(f"/v1/models/{name}:explain", json=bodies[0])  # compiles
                latencies = []
                for index in range(latency_n):
                    started = time.perf_counter()
                    response = await client.post(
                        f"/v1/models/{name}:explain", json=bodies[index % len(bodies)]
                    )
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                figures["latency"][name] = percentiles_ms(latencies)
                print(f"  {name}: p50/p99 {figures['latency'][name]}", flush=True)
            body = {"instances": [cards["mnist-cnn"].examples[0].instance]}  # type: ignore[union-attr]

            async def predictions() -> list[float]:
                latencies: list[float] = []
                remaining = load_requests

                async def one() -> None:
                    nonlocal remaining
                    while remaining > 0:
                        remaining -= 1
                        started = time.perf_counter()
                        response = await client.post("/v1/models/mnist-cnn:predict", json=body)
                        latencies.append(time.perf_counter() - started)
                        assert response.status_code == 200

                await asyncio.gather(*(one() for _ in range(16)))
                return latencies

            await predictions()
            before = await predictions()
            stop = asyncio.Event()
            explained = 0

            async def explain_loop() -> None:
                nonlocal explained
                while not stop.is_set():
                    await client.post("/v1/models/mnist-cnn:explain", json=body)
                    explained += 1

            task = asyncio.ensure_future(explain_loop())
            await asyncio.sleep(0.2)
            during = await predictions()
            stop.set()
            await task
            after = await predictions()
            figures["starvation"] = {
                "before": percentiles_ms(before),
                "during": percentiles_ms(during),
                "after": percentiles_ms(after),
                "explanations": explained,
            }
            print(f"  starvation: {figures['starvation']}", flush=True)
    return figures


def load_models(models_dir: Path) -> dict[str, Any]:
    from app.adapters import make_adapter
    from app.explain.service import make_explainer
    from app.repository import ModelRegistry, VersionPolicy
    from app.runtimes import load_model
    from app.runtimes.keras import configure_backend
    from app.settings import Settings

    configure_backend(2)
    settings = Settings(_env_file=None, models_dir=models_dir)  # type: ignore[call-arg]
    loaded = {}
    for entry in ModelRegistry.scan(models_dir, VersionPolicy()).entries:
        card = entry.card
        if card is None or entry.name not in ("mnist-cnn", "imdb-sentiment"):
            continue
        model: Any = load_model(card, entry.folder, buckets=[1, 8, 64])
        adapter = make_adapter(card, entry.folder, max_image_pixels=4_000_000)
        loaded[entry.name] = (
            model,
            adapter,
            make_explainer(card, model, adapter, settings.explain),
        )
    return loaded


def ink_figures(loaded: dict[str, Any], data_dir: Path, digits: int) -> dict[str, Any]:
    explainer = loaded["mnist-cnn"][2]
    with np.load(data_dir / "mnist.npz") as data:
        images = data["x_test"][:digits].astype(np.float32)
    inside, strong, strong_ink, steps, errors = [], [], [], [], []
    started = time.perf_counter()
    for image in images:
        result = explainer.explain(image, lambda: None)
        attribution = np.abs(np.asarray(result["attribution_map"]))
        total = attribution.sum()
        if total == 0:
            continue
        inside.append(attribution[image > 0].sum() / total)
        strong.append(attribution[image >= 128].sum() / total)
        strong_ink.append(image[image >= 128].sum() / image.sum())
        steps.append(result["method"]["steps"])
        errors.append(result["completeness"]["error"] / result["completeness"]["tolerance"])
    return {
        "digits": len(inside),
        "share_inside_ink": float(np.mean(inside)),
        "min_share_inside_ink": float(np.min(inside)),
        "share_in_strong_strokes": float(np.mean(strong)),
        "strong_strokes_share_of_ink": float(np.mean(strong_ink)),
        "steps": {str(s): steps.count(s) for s in sorted(set(steps))},
        "max_error_over_tolerance": float(np.max(errors)),
        "seconds": time.perf_counter() - started,
    }


def held_out_reviews(data_dir: Path, count: int) -> list[tuple[str, int]]:
    if CACHE.is_file():
        cached = json.loads(CACHE.read_text())
        if len(cached) >= count:
            return [(text, label) for text, label in cached[:count]]
    from sklearn.model_selection import train_test_split

    from training.data import load_imdb

    reviews = load_imdb(data_dir)
    indices = np.arange(len(reviews.texts))
    _, held_out = train_test_split(indices, test_size=0.2, stratify=reviews.labels, random_state=42)
    chosen = [(reviews.texts[i], int(reviews.labels[i])) for i in held_out[:count]]
    CACHE.write_text(json.dumps(chosen))
    return chosen


def review_figures(loaded: dict[str, Any], data_dir: Path, count: int) -> dict[str, Any]:
    from app.preprocessing.text import tokenize

    model, adapter, explainer = loaded["imdb-sentiment"]
    rng = random.Random(16)
    top_drops, random_drops, errors = [], [], []
    started = time.perf_counter()
    for text, _ in held_out_reviews(data_dir, count):
        result = explainer.explain(text, lambda: None)
        target = result["label"]
        p = result["probabilities"][target]
        labels = list(result["probabilities"])
        words = tokenize(text)
        known_words = [t for t in result["tokens"] if not t["unknown"] and " " not in t["token"]]
        distinct = list(dict.fromkeys(words))
        if len(known_words) < 10 or len(distinct) < 10:
            continue
        top = {t["token"] for t in sorted(known_words, key=lambda t: -t["attribution"])[:5]}
        chance = set(rng.sample(distinct, 5))

        column = labels.index(target)
        without = [" ".join(w for w in words if w not in removed) for removed in (top, chance)]
        after = model.predict(adapter.featurize(without))
        top_drops.append(p - after[0][column])
        random_drops.append(p - after[1][column])
        errors.append(result["completeness"]["error"] / result["completeness"]["tolerance"])
    top_array, random_array = np.asarray(top_drops), np.asarray(random_drops)
    return {
        "reviews": len(top_drops),
        "mean_drop_top5": float(top_array.mean()),
        "mean_drop_random5": float(random_array.mean()),
        "median_drop_top5": float(np.median(top_array)),
        "median_drop_random5": float(np.median(random_array)),
        "share_top5_beats_random5": float(np.mean(top_array > random_array)),
        "max_error_over_tolerance": float(np.max(errors)),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--digits", type=int, default=500)
    parser.add_argument("--reviews", type=int, default=500)
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--load-requests", type=int, default=1000)
    parser.add_argument("--http-only", action="store_true", help="latency and load only")
    args = parser.parse_args()
    print("HTTP (in-process):", flush=True)
    http = asyncio.run(http_figures(args.models_dir, args.latency_n, args.load_requests))
    if args.http_only:
        return
    loaded = load_models(args.models_dir)
    print("MNIST ink:", flush=True)
    ink = ink_figures(loaded, args.data_dir, args.digits)
    print("IMDb top-5 words:", flush=True)
    reviews = review_figures(loaded, args.data_dir, args.reviews)
    import keras

    print(f"\nbackend: {keras.backend.backend()}; versions: {http['versions']}\n")
    print("| model | explanation p50 ms | p99 ms |\n|---|---:|---:|")
    for name, (p50, p99) in http["latency"].items():
        print(f"| {name} | {p50:.1f} | {p99:.1f} |")
    s = http["starvation"]
    print(
        "\nmnist-cnn predictions at concurrency 16, p50/p99 ms: before "
        f"{s['before'][0]:.1f}/{s['before'][1]:.1f}, while explanations run "
        f"{s['during'][0]:.1f}/{s['during'][1]:.1f}, after {s['after'][0]:.1f}/"
        f"{s['after'][1]:.1f} ({s['explanations']} explanations meanwhile)"
    )
    print(f"\nMNIST ink: {json.dumps(ink)}")
    print(f"IMDb words: {json.dumps(reviews)}")


if __name__ == "__main__":
    main()
