"""In-process compute limit: items/s of each model's featurisation + forward pass at batch
1, 32 and 128, through the server's own runtimes (so with the server's Keras backend)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.adapters import make_adapter
from app.runtimes import load_model
from app.runtimes.keras import configure_backend
from app.schemas.card import ModelCard
from app.schemas.predict import predict_request_model

BATCHES = (1, 32, 128)


def main(models_dir: Path) -> None:
    configure_backend(len(os.sched_getaffinity(0)))
    results = {}
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        folder = max(
            (p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        card = ModelCard.read(folder)
        model = load_model(card, folder, buckets=BATCHES)
        adapter = make_adapter(card, folder, max_image_pixels=10**8)
        request = predict_request_model(card, max_instances=1000, max_text_chars=10**6, examples=[])
        instances = request.model_validate({"instances": [card.examples[0].instance]}).instances  # type: ignore[attr-defined]
        row = adapter.to_row(instances[0])
        by_batch = {}
        for batch in BATCHES:
            rows = [row] * batch
            model.predict(adapter.featurize(rows))  # compile / warm
            calls, started = 0, time.perf_counter()
            while time.perf_counter() - started < 2.0:
                model.predict(adapter.featurize(rows))
                calls += 1
            by_batch[str(batch)] = batch * calls / (time.perf_counter() - started)
        results[card.name] = by_batch
        print(card.name, {k: round(v) for k, v in by_batch.items()}, file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
