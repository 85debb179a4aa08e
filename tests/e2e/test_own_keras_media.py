"""Keras image and text models users bring: a small RGB image classifier and a model with a
TextVectorization layer, imported with `synergy import` (the CLI), served by real servers,
answering V1 and V2 (JSON and binary) as the model does in-process, explained, given feedback,
reported; bad images refused with the expected shape. Only the tensorflow backend has string
tensors: the text model is imported on the default backend (jax), where the server tokenises
through its TextVectorization layer before the compiled network, and served the same by a
server on jax and one on tensorflow."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.kinds.base import DEFAULT_PROBABILITY_FLOOR, bound_probabilities
from tests.conftest import ROOT
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # float32 on the wire
SIDE = 16
COLOURS = ["red", "green", "blue"]
WORDS = {
    "pos": ["good", "great", "fun", "lovely", "superb", "enjoyable"],
    "neg": ["bad", "awful", "boring", "dull", "poor", "tedious"],
}
FILLER = ["the", "movie", "was", "plot", "acting", "and", "very", "quite"]


def _images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16, 3) values 0-1, each image's class its dominant colour."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, count)
    x = rng.random((count, SIDE, SIDE, 3)).astype(np.float32) * 0.5
    for i, c in enumerate(classes):
        x[i, :, :, c] += 0.5
    return x, classes


def _texts(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    texts = []
    for label in labels:
        pool = WORDS["pos" if label else "neg"]
        words = list(rng.choice(FILLER, 5)) + list(rng.choice(pool, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels


def _image_model(x: np.ndarray, y: np.ndarray) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, verbose=0)
    return model


def _text_model(texts: list[str], y: np.ndarray) -> Any:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    vectorize = keras.layers.TextVectorization(max_tokens=64, output_sequence_length=10)
    vectorize.adapt(texts)
    inputs = keras.Input(shape=(1,), dtype="string")
    hidden = keras.layers.Embedding(64, 8)(vectorize(inputs))
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(tf.constant(np.array(texts).reshape(-1, 1)), y, epochs=5, verbose=0)
    return model


def _outputs(model: Any, x: Any) -> np.ndarray:
    """The model's own probabilities in-process, bounded as the server serves them."""
    import tensorflow as tf

    if isinstance(x, list):  # texts
        x = tf.constant(np.array(x, dtype=object).reshape(-1, 1))
    values = np.asarray(model(x, training=False), dtype=np.float64)
    if values.shape[1] == 1:
        values = np.hstack([1.0 - values, values])
    return bound_probabilities(values, DEFAULT_PROBABILITY_FLOOR)


def _cli(*args: str, backend: str = "tensorflow") -> subprocess.CompletedProcess[str]:
    env = {"KERAS_BACKEND": backend, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "training.importing.cli", "import", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


@dataclass
class Media:
    jax: Server  # the default backend: serves both models
    tensorflow: Server  # serves the text model, strings in its graph
    image_model: Any
    text_model: Any
    images: np.ndarray
    texts: list[str]
    import_seconds: dict[str, float]
    files: Path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    root = tmp_path_factory.mktemp("media")
    models, text_only = root / "models", root / "text-models"
    x, y = _images(240, 0)
    image_model = _image_model(x[:180], y[:180])
    image_model.save(root / "rgb.keras")
    np.savez(root / "example.npz", x=x[180:183])
    np.savez(root / "test.npz", x=x[180:], y=y[180:])
    texts, labels = _texts(200, 1)
    text_model = _text_model(texts[:150], labels[:150])
    text_model.save(root / "reviews.keras")
    pd.DataFrame({"text": texts[150:153]}).to_csv(root / "example.csv", index=False)
    pd.DataFrame({"text": texts[150:], "label": labels[150:]}).to_csv(
        root / "eval.csv", index=False
    )
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    done = _cli(
        str(root / "rgb.keras"),
        "--name",
        "colours",
        "--example",
        str(root / "example.npz"),
        "--eval",
        str(root / "test.npz"),
        "--labels",
        ",".join(COLOURS),
        "--models-dir",
        str(models),
    )
    seconds["keras-rgb (CLI, incl. start-up)"] = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    started = time.perf_counter()
    done = _cli(
        str(root / "reviews.keras"),
        "--name",
        "reviews",
        "--example",
        str(root / "example.csv"),
        "--eval",
        str(root / "eval.csv"),
        "--target",
        "label",
        "--labels",
        "neg,pos",
        "--models-dir",
        str(models),
        backend="jax",
    )
    seconds["keras-text (CLI on jax, incl. start-up)"] = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    shutil.copytree(models / "reviews", text_only / "reviews")
    jax = start_server(root / "jax.log", models, wait_path="/health/live")
    tensorflow = start_server(root / "tf.log", text_only, KERAS_BACKEND="tensorflow")
    try:
        for name in ("colours", "reviews"):
            assert _wait_state(jax, name, 1)["state"] == "ready"
        yield Media(jax, tensorflow, image_model, text_model, x[180:], texts[150:], seconds, root)
    finally:
        jax.stop()
        tensorflow.stop()


def _wait_state(server: Server, name: str, version: int, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for model in httpx.get(f"{server.url}/v1/models", timeout=10).json()["models"]:
            if model["name"] == name:
                for status in model["versions"]:
                    if status["version"] == version and status["state"] in ("ready", "failed"):
                        return dict(status)
        time.sleep(0.3)
    raise TimeoutError(f"{name}/{version} never settled")


def _probabilities(answer: httpx.Response) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    return np.array([list(p["probabilities"].values()) for p in answer.json()["predictions"]])


def _png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _binary_request(header: dict[str, Any], blob: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + blob, {"Inference-Header-Content-Length": str(len(head))}


def _binary_probabilities(answer: httpx.Response, shape: tuple[int, ...]) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    return np.frombuffer(answer.content[length:], dtype="<f4").reshape(shape)


def test_the_image_model_answers_v1_and_v2_as_in_process(media: Media) -> None:
    url, x = media.jax.url, media.images[:3]
    expected = _outputs(media.image_model, x)
    got = _probabilities(
        httpx.post(f"{url}/v1/models/colours:predict", json={"instances": x.tolist()}, timeout=30)
    )
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)
    tensor = {"name": "image", "datatype": "FP32", "shape": [3, SIDE, SIDE, 3]}
    answer = httpx.post(
        f"{url}/v2/models/colours/infer",
        json={"inputs": [{**tensor, "data": x.reshape(-1).tolist()}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], expected.shape), expected, atol=TOLERANCE
    )
    assert outputs["label"]["data"] == [COLOURS[i] for i in expected.argmax(axis=1)]
    blob = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = {
        "inputs": [{**tensor, "parameters": {"binary_data_size": len(blob)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    body, headers = _binary_request(header, blob)
    answer = httpx.post(f"{url}/v2/models/colours/infer", content=body, headers=headers, timeout=30)
    np.testing.assert_allclose(
        _binary_probabilities(answer, expected.shape), expected, atol=TOLERANCE
    )


def test_image_files_are_read_at_their_size_on_the_models_scale(media: Media) -> None:
    url = media.jax.url
    levels = np.rint(media.images[:2] * 255).astype(np.uint8)
    expected = _outputs(media.image_model, levels.astype(np.float32) / 255.0)
    files = [base64.b64encode(_png(level)).decode() for level in levels]
    got = _probabilities(
        httpx.post(
            f"{url}/v1/models/colours:predict",
            json={"instances": [{"b64": f} for f in files]},
            timeout=30,
        )
    )
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)
    answer = httpx.post(
        f"{url}/v2/models/colours/infer",
        json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": files}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    probabilities = answer.json()["outputs"][1]["data"]
    np.testing.assert_allclose(np.reshape(probabilities, expected.shape), expected, atol=TOLERANCE)


def test_uploads_and_the_api_document_cover_the_image_model(media: Media) -> None:
    url = media.jax.url
    levels = np.rint(media.images[:1] * 255).astype(np.uint8)
    expected = _outputs(media.image_model, levels.astype(np.float32) / 255.0)
    answer = httpx.post(
        f"{url}/v1/models/colours:predict-image",
        files={"file": ("x.png", _png(levels[0]), "image/png")},
        timeout=30,
    )
    np.testing.assert_allclose(_probabilities(answer), expected, atol=TOLERANCE)
    document = httpx.get(f"{url}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text[:300]
    assert "/v1/models/colours:predict" in document.json()["paths"]


def test_a_wrong_image_is_a_422_naming_the_expected_shape(media: Media) -> None:
    url = media.jax.url
    wrong = [
        np.zeros((SIDE, SIDE)).tolist(),  # no channels
        np.zeros((SIDE, SIDE, 1)).tolist(),  # grey
        np.zeros((8, 8, 3)).tolist(),  # smaller
    ]
    for instance in wrong:
        answer = httpx.post(
            f"{url}/v1/models/colours:predict", json={"instances": [instance]}, timeout=30
        )
        assert answer.status_code == 422, answer.text
        assert "16x16x3 (height x width x channels)" in answer.json()["error"], answer.text
    answer = httpx.post(
        f"{url}/v1/models/colours:predict",
        json={"instances": [np.full((SIDE, SIDE, 3), 200.0).tolist()]},
        timeout=30,
    )
    assert answer.status_code == 422 and "0 to 1" in answer.json()["error"], answer.text
    small = base64.b64encode(_png(np.zeros((8, 8, 3), dtype=np.uint8))).decode()
    answer = httpx.post(
        f"{url}/v1/models/colours:predict", json={"instances": [{"b64": small}]}, timeout=30
    )
    assert answer.status_code == 422 and "exactly 16x16" in answer.json()["error"], answer.text
    answer = httpx.post(
        f"{url}/v2/models/colours/infer",
        json={
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 16, 16], "data": [0.0] * 256}
            ]
        },
        timeout=30,
    )
    assert answer.status_code == 400 and "[N, 16, 16, 3]" in answer.json()["error"], answer.text


def test_the_image_models_metadata_and_card(media: Media) -> None:
    url = media.jax.url
    metadata = httpx.get(f"{url}/v2/models/colours", timeout=10).json()
    assert metadata["inputs"][0]["shape"] == [-1, SIDE, SIDE, 3]
    assert "0 to 1" in metadata["inputs"][0]["parameters"]["description"]
    card = httpx.get(f"{url}/v1/models/colours", timeout=10).json()["card"]
    assert card["input"]["kind"] == "raw-image"
    assert (card["input"]["value_low"], card["input"]["value_high"]) == (0.0, 1.0)
    assert card["metrics"]["accuracy"] > 0.9, card["metrics"]


def test_the_image_model_is_explained_reported_and_gets_feedback(media: Media) -> None:
    url = media.jax.url
    answer = httpx.post(
        f"{url}/v1/models/colours:explain",
        json={"instances": [media.images[0].tolist()]},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    explanation = answer.json()["explanations"][0]
    assert np.shape(explanation["attribution_map"]) == (SIDE, SIDE)
    gap = explanation["completeness"]
    assert gap["error"] <= gap["tolerance"], gap
    assert explanation["overlay_png"]
    _feedback_and_report(media.jax, "colours", [media.images[i].tolist() for i in range(2)])


def _feedback_and_report(server: Server, name: str, instances: list[Any]) -> None:
    answer = httpx.post(
        f"{server.url}/v1/models/{name}:predict", json={"instances": instances}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    labels = [p["label"] for p in answer.json()["predictions"]]
    feedback = httpx.post(
        f"{server.url}/v1/models/{name}:feedback",
        json={"request_id": answer.headers["x-request-id"], "labels": labels},
        timeout=10,
    )
    assert feedback.status_code == 200, feedback.text
    monitoring = httpx.get(f"{server.url}/v1/models/{name}/monitoring", timeout=30).json()
    version = monitoring["versions"][0]
    assert version["rows_with_feedback"] >= 2, version
    assert version["accuracy"]["all_time"]["accuracy"] == 1.0, version
    assert version["drift"]["profile"], version
    report = httpx.get(f"{server.url}/v1/models/{name}/report", timeout=60)
    assert report.status_code == 200, report.text[:300]
    assert "Confusion matrix" in report.text


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_the_text_model_answers_v1_and_v2_as_in_process(media: Media, backend: str) -> None:
    url, texts = getattr(media, backend).url, media.texts[:3]
    expected = _outputs(media.text_model, texts)
    got = _probabilities(
        httpx.post(f"{url}/v1/models/reviews:predict", json={"instances": texts}, timeout=30)
    )
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)
    tensor = {"name": "text", "datatype": "BYTES", "shape": [3]}
    metadata = httpx.get(f"{url}/v2/models/reviews", timeout=10).json()
    assert metadata["inputs"][0]["datatype"] == "BYTES"
    tensor["name"] = metadata["inputs"][0]["name"]
    answer = httpx.post(
        f"{url}/v2/models/reviews/infer", json={"inputs": [{**tensor, "data": texts}]}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    np.testing.assert_allclose(
        np.reshape(outputs["probabilities"]["data"], expected.shape), expected, atol=TOLERANCE
    )
    blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = {
        "inputs": [{**tensor, "parameters": {"binary_data_size": len(blob)}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    body, headers = _binary_request(header, blob)
    answer = httpx.post(f"{url}/v2/models/reviews/infer", content=body, headers=headers, timeout=30)
    np.testing.assert_allclose(
        _binary_probabilities(answer, expected.shape), expected, atol=TOLERANCE
    )


def test_the_text_model_is_explained_reported_and_gets_feedback(media: Media) -> None:
    url = media.jax.url
    answer = httpx.post(
        f"{url}/v1/models/reviews:explain", json={"instances": media.texts[:1]}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    explanation = answer.json()["explanations"][0]
    assert explanation["attributions"]
    gap = explanation["completeness"]
    assert gap["error"] <= gap["tolerance"], gap
    _feedback_and_report(media.jax, "reviews", media.texts[:2])


def test_import_times(media: Media) -> None:
    print("\nimport seconds:", json.dumps(media.import_seconds))
    assert all(s > 0 for s in media.import_seconds.values())
