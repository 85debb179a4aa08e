"""100 concurrent requests per model return what the same requests return one at a time."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.main import create_app
from app.schemas.card import ModelCard
from tests.conftest import MODEL_NAMES, assert_same_predictions, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _variants(card: ModelCard, count: int, rng: random.Random) -> list[list[Any]]:
    """`count` request bodies' instances: real examples, perturbed, 1 to 3 per request."""
    base = [e.instance for e in card.examples]
    requests = []
    for _ in range(count):
        instances = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            instance = rng.choice(base)
            if card.input.kind == "tabular":
                values = list(instance.values()) if isinstance(instance, dict) else instance
                instance = [round(v + rng.uniform(-0.5, 0.5), 3) for v in values]
            elif card.input.kind == "image":
                shifted = np.roll(np.array(instance), rng.randint(-3, 3), axis=rng.randint(0, 1))
                instance = shifted.tolist()
            else:
                words = instance.split()
                instance = " ".join(rng.sample(words, k=max(1, len(words) * 2 // 3)))
            instances.append(instance)
        requests.append(instances)
    return requests


async def test_concurrent_requests_get_exactly_their_own_predictions(tiny_models_dir: Path) -> None:
    app = create_app(make_settings(tiny_models_dir, max_batch_wait_ms=5))
    async with app.router.lifespan_context(app):
        await app.state.service.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for name in MODEL_NAMES:
                card = ModelCard.read(tiny_models_dir / name / "1")
                bodies = _variants(card, 100, random.Random(name))

                async def call(instances: list[Any], model: str = name) -> list[Any]:
                    response = await client.post(
                        f"/v1/models/{model}:predict", json={"instances": instances}
                    )
                    assert response.status_code == 200, response.text
                    predictions: list[Any] = response.json()["predictions"]
                    return predictions

                def counted(suffix: str, model: str = name) -> float:
                    value = app.state.metrics.registry.get_sample_value(
                        f"synergy_batch_size_rows_{suffix}", {"model": model, "version": "1"}
                    )
                    return float(value or 0.0)

                alone = [await call(body) for body in bodies]
                rows_before, batches_before = counted("sum"), counted("count")
                together = await asyncio.gather(*(call(body) for body in bodies))
                for one, other in zip(together, alone, strict=True):
                    assert_same_predictions(one, other)
                # Every row was computed once, and in far fewer model calls than requests.
                assert counted("sum") - rows_before == sum(len(body) for body in bodies)
                assert counted("count") - batches_before < len(bodies) / 2


def test_health_answers_while_the_model_is_busy(tiny_models_dir: Path) -> None:
    """Inference runs on the model's worker thread: the event loop keeps answering."""
    import threading
    import time

    from tests.conftest import predict, running_app

    with running_app(tiny_models_dir) as client:
        entry = client.app.state.service.registry.get_ready("iris-knn")
        real_predict = entry.model.predict
        started = threading.Event()

        def slow_predict(batch: Any) -> Any:
            started.set()
            time.sleep(1.5)  # a long model call (the GIL is released while sleeping, as in
            return real_predict(batch)  # the numeric kernels of a real forward pass)

        entry.model.predict = slow_predict
        answers: list[int] = []
        caller = threading.Thread(
            target=lambda: answers.append(
                predict(client, "iris-knn", [[5.1, 3.5, 1.4, 0.2]]).status_code
            )
        )
        caller.start()
        assert started.wait(5)
        for path in ("/health/live", "/health/ready", "/v2/health/ready"):
            began = time.perf_counter()
            assert client.get(path).status_code == 200
            assert time.perf_counter() - began < 0.5, f"{path} waited for the model"
        caller.join(10)
        assert answers == [200]
