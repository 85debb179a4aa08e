"""Feedback and monitoring endpoints, in process: every protocol and input route records,
feedback's error contract, live accuracy against the card, drift, payload log, bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.schemas.monitoring import FeedbackResponse, MonitoringResponse
from tests.conftest import assert_error, card_examples, predict, running_app

IRIS_SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def app_client(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # A flush interval far longer than any test: feedback must find its rows anyway.
    payloads = tmp_path_factory.mktemp("payloads") / "events.jsonl"
    with running_app(
        tiny_models_dir, store_flush_interval_ms=60_000, payload_log=str(payloads)
    ) as client:
        client.payloads = payloads
        yield client


def feedback(client: Any, model: str, request_id: str, labels: list[Any]) -> Any:
    return client.post(
        f"/v1/models/{model}:feedback", json={"request_id": request_id, "labels": labels}
    )


def report(client: Any, model: str, version: int | None = None) -> dict[str, Any]:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + "/monitoring"
    response = client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    MonitoringResponse.model_validate(body)  # the documented schema
    return body


def test_the_trainers_write_a_listed_profile(tiny_models_dir: Path) -> None:
    for name in ("iris-knn", "binary-mlp", "mnist-cnn", "imdb-sentiment"):
        card = json.loads((tiny_models_dir / name / "1" / "card.json").read_text())
        assert card["profile_file"] == "profile.json"
        assert "profile.json" in card["artifacts"]


def test_feedback_right_after_a_v1_prediction(app_client: Any) -> None:
    response = predict(app_client, "iris-knn", [IRIS_SETOSA, IRIS_SETOSA])
    request_id = response.headers["x-request-id"]
    before = report(app_client, "iris-knn")["versions"][0]
    answer = feedback(app_client, "iris-knn", request_id, ["setosa", None])
    assert answer.status_code == 200, answer.text
    body = FeedbackResponse.model_validate(answer.json())
    assert (body.rows, body.labelled, body.version) == (2, 1, 1)
    # Idempotent: the same feedback again, the same answer and the same counts.
    again = feedback(app_client, "iris-knn", request_id, ["setosa", None])
    assert again.status_code == 200 and again.json() == answer.json()
    after = report(app_client, "iris-knn")["versions"][0]
    assert after["rows_with_feedback"] == before["rows_with_feedback"] + 1
    assert after["rows_predicted"] >= before["rows_predicted"] + 2


def test_client_request_id_and_v2_binary_tensors_are_recorded(
    app_client: Any, tiny_models_dir: Path
) -> None:
    grids = [instance for instance, _ in card_examples(tiny_models_dir, "mnist-cnn")][:2]
    raw = np.array(grids, dtype=np.uint8).tobytes()
    header = {
        "inputs": [
            {
                "name": "image",
                "datatype": "UINT8",
                "shape": [2, 28, 28],
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    head = json.dumps(header).encode()
    response = app_client.post(
        "/v2/models/mnist-cnn/infer",
        content=head + raw,
        headers={"Inference-Header-Content-Length": str(len(head)), "X-Request-ID": "v2-bin-1"},
    )
    assert response.status_code == 200, response.text
    answer = feedback(app_client, "mnist-cnn", "v2-bin-1", ["7", "2"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == 2


def test_text_and_image_upload_routes_record(app_client: Any, tiny_models_dir: Path) -> None:
    text = predict(app_client, "imdb-sentiment", ["A wonderful, moving film."])
    assert (
        feedback(
            app_client, "imdb-sentiment", text.headers["x-request-id"], ["positive"]
        ).status_code
        == 200
    )
    import io

    from PIL import Image

    grid = np.array(card_examples(tiny_models_dir, "mnist-cnn")[0][0], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    upload = app_client.post(
        "/v1/models/mnist-cnn:predict-image",
        files={"file": ("digit.png", buffer.getvalue(), "image/png")},
    )
    assert upload.status_code == 200, upload.text
    assert (
        feedback(app_client, "mnist-cnn", upload.headers["x-request-id"], [None]).status_code == 200
    )


def test_feedback_errors(app_client: Any) -> None:
    request_id = predict(app_client, "iris-knn", [IRIS_SETOSA]).headers["x-request-id"]
    assert_error(feedback(app_client, "iris-knn", "never-seen", ["setosa"]), 404, "never-seen")
    assert_error(feedback(app_client, "iris", request_id, ["setosa"]), 404, "iris-knn")
    # The id belongs to another model's prediction.
    assert_error(feedback(app_client, "binary-mlp", request_id, ["1"]), 404)
    assert_error(
        feedback(app_client, "iris-knn", request_id, ["setosa", "setosa"]), 422, "1 instance"
    )
    assert_error(feedback(app_client, "iris-knn", request_id, ["rose"]), 422, "labels[0]", "setosa")
    assert_error(feedback(app_client, "iris-knn", request_id, [7]), 422, "labels")
    assert_error(feedback(app_client, "iris-knn", request_id, []), 422, "labels")
    assert_error(
        app_client.post("/v1/models/iris-knn:feedback", json={"labels": ["setosa"]}),
        422,
        "request_id",
    )
    assert_error(
        app_client.post(
            "/v1/models/iris-knn:feedback",
            json={"request_id": request_id, "labels": ["setosa"], "extra": 1},
        ),
        422,
        "extra",
    )
    assert_error(feedback(app_client, "iris-knn", "bad id with spaces", ["setosa"]), 422)


def test_monitoring_report_accuracy_and_confusion(app_client: Any) -> None:
    # Feedback that says every setosa prediction was really virginica.
    for _ in range(3):
        request_id = predict(app_client, "iris-knn", [IRIS_SETOSA] * 10).headers["x-request-id"]
        assert feedback(app_client, "iris-knn", request_id, ["virginica"] * 10).status_code == 200
    version = report(app_client, "iris-knn", 1)["versions"][0]
    labels = version["confusion_matrix"]["labels"]
    matrix = version["confusion_matrix"]["matrix"]
    assert matrix[labels.index("virginica")][labels.index("setosa")] >= 30
    recent = version["accuracy"]["recent"]
    assert recent["rows"] >= 30 and recent["accuracy"] < 0.5
    assert recent["interval_95"][1] < version["held_out_accuracy"]
    assert recent["below_held_out"] is True
    metrics = app_client.get("/metrics").text
    assert 'synergy_live_accuracy_below_held_out{model="iris-knn",version="1"} 1.0' in metrics
    assert 'synergy_feedback_rows{model="iris-knn",version="1"}' in metrics


def test_monitoring_errors(app_client: Any) -> None:
    assert_error(app_client.get("/v1/models/iris/monitoring"), 404, "iris-knn")
    assert_error(app_client.get("/v1/models/iris-knn/versions/9/monitoring"), 404)
    assert_error(app_client.get("/v1/models/iris-knn/versions/x/monitoring"), 422)


def test_drift_is_flagged_for_shifted_petal_length(tiny_models_dir: Path) -> None:
    from training.profile import serving_rows
    from training.splits import load_split

    # Rows like the training data (the profile's own distribution): this tests the mechanism;
    # bench/drift_eval.py measures false flags on held-out traffic.
    training = serving_rows(load_split("iris-knn", None).x_train)
    with running_app(tiny_models_dir, store_flush_interval_ms=50) as client:
        rng = np.random.default_rng(0)
        rows = [training[i].tolist() for i in rng.permutation(len(training))] * 2
        predict(client, "iris-knn", rows)
        drift = _drift_when_written(client, 200)
        assert drift["profile"] and not drift["flagged"], drift
        shifted = [[a, b, c + 1.5, d] for a, b, c, d in rows]
        predict(client, "iris-knn", shifted)
        drift = _drift_when_written(client, 200, shifted=True)
        assert drift["flagged"], drift
        flagged = {s["statistic"] for s in drift["statistics"] if s["flag"]}
        assert "petal_length" in flagged
        assert "synergy_drift_flag" in client.get("/metrics").text


def _drift_when_written(client: Any, rows: int, shifted: bool = False) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while True:
        drift: dict[str, Any] = report(client, "iris-knn")["versions"][0]["drift"]
        mean = next((s for s in drift["statistics"] if s["statistic"] == "petal_length"), None)
        if drift["rows"] >= rows and (not shifted or (mean and mean["flag"])):
            return drift
        if time.monotonic() > deadline:
            return drift
        time.sleep(0.1)


def test_payload_log_has_readable_v2_binary_tensors(app_client: Any) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = app_client.payloads.read_text() if app_client.payloads.exists() else ""
        if '"requestid":"v2-bin-1"' in text:
            break
        time.sleep(0.1)
    events = [json.loads(line) for line in text.splitlines()]
    mine = [e for e in events if e["requestid"] == "v2-bin-1"]
    assert {e["type"] for e in mine} == {
        "io.synergy.inference.request",
        "io.synergy.inference.response",
    }
    request = next(e for e in mine if e["type"].endswith("request"))
    grid = request["data"]["instances"][0]
    assert len(grid) == 28 and len(grid[0]) == 28  # numbers, not base64 bytes


def test_store_off_serves_and_answers_feedback_clearly(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, store_predictions=False) as client:
        response = predict(client, "iris-knn", [IRIS_SETOSA])
        assert response.status_code == 200
        assert_error(
            feedback(client, "iris-knn", response.headers["x-request-id"], ["setosa"]),
            404,
            "SYNERGY_STORE_PREDICTIONS",
        )
        assert_error(client.get("/v1/models/iris-knn/monitoring"), 404, "off")


def test_a_full_queue_drops_and_counts_and_the_request_succeeds(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, store_queue_rows=1, store_flush_interval_ms=60_000) as client:
        response = predict(client, "iris-knn", [IRIS_SETOSA, IRIS_SETOSA])
        assert response.status_code == 200
        metrics = client.get("/metrics").text
        assert 'synergy_monitoring_dropped_rows_total{sink="store"} 2.0' in metrics
