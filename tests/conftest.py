"""Shared fixtures: real data, tiny models trained on real data slices, apps and clients."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.tiers import GUARD, TIERS, TRAINING_FIXTURES, tier_of

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process tests train tiny models, and training runs on TensorFlow; Keras picks its backend
# once per process, so the in-process app serves on TensorFlow too. The e2e tests start real
# servers on the default backend (JAX), and a test compares the two.
os.environ["KERAS_BACKEND"] = "tensorflow"

# Fixtures shared by tests of two tiers, each module by theme.
pytest_plugins = ["tests.monitoring_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_MODELS = ROOT / "models"
COMMITTED_VERSION = "2"  # the one version of each model committed in models/
MODEL_NAMES = ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment")


def pytest_configure(config: pytest.Config) -> None:
    GUARD.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; a test outside the tier folders is an error.

    The run goes tier by tier, quickest first: a broken unit test shows in seconds, not after
    the e2e tier, and session fixtures end in the last tier's teardown, not a unit test's."""
    stray = set()
    for item in items:
        tier = tier_of(item.path)
        if tier is None:
            stray.add(str(item.path))
        else:
            item.add_marker(tier)
    if stray:
        raise pytest.UsageError(
            f"tests outside tests/{{{','.join(TIERS)}}}/ have no tier: {sorted(stray)}"
        )
    items.sort(key=lambda item: TIERS.index(tier_of(item.path) or TIERS[0]))


def _guarded(item: pytest.Item) -> Iterator[None]:
    """Run one phase of a unit test with the guard armed; fail it on any violation."""
    if item.get_closest_marker("unit") is None:
        yield
        return
    GUARD.take()
    try:
        with GUARD.armed():
            yield
    finally:
        # Also when the phase raised: the violation is the reason to report, not its effect.
        violations = GUARD.take()
        if violations:
            pytest.fail("\n".join(violations), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    trains = sorted(
        name
        for name, definitions in item._fixtureinfo.name2fixturedefs.items()  # type: ignore[attr-defined]
        # the conftest's own fixture, not a module's fixture of the same name (a fake `client`)
        if name in TRAINING_FIXTURES and definitions[-1].func.__module__ == __name__
    )
    if trains and item.get_closest_marker("unit") is not None:
        pytest.fail(
            f"a unit test trains models (fixtures {trains}); move it to tests/integration/",
            pytrace=False,
        )
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    return (yield from _guarded(item))


def _data_dir() -> Path:
    return Path(os.environ.get("SYNERGY_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST and IMDb files (see ../shared/data/README.md)."""
    path = _data_dir()
    missing = [
        name for name in ("mnist.npz", "aclImdb_train.tar.gz") if not (path / name).is_file()
    ]
    if missing:
        pytest.fail(
            f"real data missing in {path}: {missing}; set SYNERGY_DATA_DIR to the folder "
            "holding mnist.npz and aclImdb_train.tar.gz"
        )
    return path


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """All four models, trained by the real trainers on a few hundred real rows, 1 epoch.

    API tests use these so they exercise the pipeline, not the committed artifacts.
    """
    from training.common import TrainOptions, train_and_save
    from training.train import TRAINERS

    out = tmp_path_factory.mktemp("models")
    options = TrainOptions(data_dir=data_dir, epochs=1, max_rows=400, quiet=True)
    import importlib

    for name in MODEL_NAMES:
        trainer = importlib.import_module(TRAINERS[name]).train
        train_and_save(name, trainer, out, options, version=1)
    return out


@pytest.fixture
def models_copy(tmp_path: Path, tiny_models_dir: Path) -> Path:
    """A private copy of the tiny models, for tests that break or add artifacts."""
    target = tmp_path / "models"
    shutil.copytree(tiny_models_dir, target)
    return target


def make_settings(models_dir: Path, **overrides: Any) -> Any:
    """Settings for tests: quiet, small, no environment leaking in."""
    from app.settings import Settings

    values: dict[str, Any] = {
        "models_dir": models_dir,
        "log_requests": False,
        "shutdown_grace_period_s": 2.0,
        # No gRPC port unless a test asks for one: the default (8081) is the same for all.
        "grpc_port": 0,
        # Each app its own prediction store: no state from an earlier test or run.
        "store_dir": Path(tempfile.mkdtemp(prefix="synergy-store-")),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def wait_ready(client: Any, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll /health/ready until every model is ready or failed; return the last body."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/health/ready")
        body: dict[str, Any] = response.json()
        if all(m["state"] != "loading" for m in body["models"]):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"models still loading after {timeout_s}s: {body}")
        time.sleep(0.05)


@contextmanager
def running_app(models_dir: Path, *, expect_ready: bool = True, **overrides: Any) -> Iterator[Any]:
    """An in-process client (TestClient) with the lifespan running and loading finished."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(make_settings(models_dir, **overrides))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        body = wait_ready(test_client)
        if expect_ready:
            assert body["status"] == "ready", body
        yield test_client


@pytest.fixture(scope="module")
def client(tiny_models_dir: Path) -> Iterator[Any]:
    """An in-process client with the lifespan running and every tiny model ready."""
    with running_app(tiny_models_dir) as test_client:
        yield test_client


def predict(client: Any, model: str, instances: list[Any], **kwargs: Any) -> Any:
    """POST {"instances": ...} to a model's :predict."""
    return client.post(f"/v1/models/{model}:predict", json={"instances": instances}, **kwargs)


def assert_error(response: Any, status: int, *fragments: str) -> None:
    """The response is `{"error": "..."}` with this status, and the message says each fragment."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


def model_batches(client: Any, model: str) -> float:
    """How many batches the model has computed (from /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "synergy_batch_size_rows":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_count") and s.labels.get("model") == model
            )
    return 0.0


def card_examples(models_dir: Path, name: str) -> list[Any]:
    """The real held-out examples a model's card carries."""
    from app.schemas.card import ModelCard

    card = ModelCard.read(models_dir / name / "1")
    return [(example.instance, example.label) for example in card.examples]


def assert_same_predictions(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same labels, same classes, probabilities equal to float32 noise.

    A batch of 8 and a batch of 1 run through different kernel paths, so probabilities can
    differ in the 7th significant digit; a mis-split batch would differ completely.
    """
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got["label"] == want["label"]
        assert list(got["probabilities"]) == list(want["probabilities"])
        for key, value in want["probabilities"].items():
            assert abs(got["probabilities"][key] - value) <= 1e-6, (key, got, want)
