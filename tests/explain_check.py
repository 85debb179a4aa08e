"""Explain real held-out examples with the committed models on one Keras backend; print JSON.

Run by tests/integration/test_explain_models.py in a subprocess per backend (Keras picks
its backend once per process):
`KERAS_BACKEND=jax python -m tests.explain_check <models_dir> <data_dir>`.
Held-out examples: every card's examples, plus the first MNIST test images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MNIST_TEST_IMAGES = 12


def main(models_dir: Path, data_dir: Path) -> dict[str, Any]:
    from app.adapters import make_adapter
    from app.explain.service import make_explainer
    from app.repository import ModelRegistry, VersionPolicy
    from app.runtimes import load_model
    from app.runtimes.keras import configure_backend
    from app.schemas.predict import predict_request_model
    from app.settings import Settings

    backend = configure_backend(2)
    settings = Settings(_env_file=None, models_dir=models_dir)  # type: ignore[call-arg]
    newest: dict[str, Any] = {}
    for entry in ModelRegistry.scan(models_dir, VersionPolicy()):
        if entry.card is not None and entry.version >= getattr(
            newest.get(entry.name), "version", 0
        ):
            newest[entry.name] = entry
    report: dict[str, Any] = {"backend": backend, "models": {}}
    for name, entry in sorted(newest.items()):
        card = entry.card
        model: Any = load_model(card, entry.folder, buckets=[1, 8, 64])
        adapter = make_adapter(card, entry.folder, max_image_pixels=4_000_000)
        request = predict_request_model(card, max_instances=64, max_text_chars=10**9, examples=[])
        instances = request.model_validate(
            {"instances": [example.instance for example in card.examples]}
        ).instances  # type: ignore[attr-defined]
        rows = [adapter.to_row(instance) for instance in instances]
        if card.input.kind == "image":
            with np.load(data_dir / "mnist.npz") as data:
                rows += list(data["x_test"][:MNIST_TEST_IMAGES].astype(np.float32))
        explainer = make_explainer(card, model, adapter, settings.explain)
        predicted = model.predict(adapter.featurize(rows))
        records = []
        for row, probabilities in zip(rows, predicted, strict=True):
            result = explainer.explain(row, lambda: None)
            record = {
                "label": result["label"],
                "predicted_label": card.labels[int(np.argmax(probabilities))],
                "completeness": result["completeness"],
                "method": result["method"],
            }
            if "attribution_map" in result:
                record["attribution_map"] = result["attribution_map"]
            records.append(record)
        report["models"][name] = {"version": entry.version, "records": records}
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
