"""The hot path's lane (`app.api.fastlane`): `:predict` and V2 `infer` skip FastAPI's stack
and keep every behaviour of it; everything else, and what the lane cannot serve exactly
(CORS), takes the full stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.types import Receive, Scope, Send

from tests.conftest import assert_error, predict, running_app

V2_IRIS = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [5, 3, 1, 0]}]
}


def _break_the_full_stack(client: Any) -> None:
    """From now on, whatever reaches FastAPI's middleware stack fails loudly."""

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} took the full stack")

    client.app.middleware_stack = broken


def test_predict_and_infer_do_not_cross_fastapis_stack(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir) as client:
        expected = predict(client, "iris-knn", [[5, 3, 1, 0]]).json()
        _break_the_full_stack(client)
        response = predict(client, "iris-knn", [[5, 3, 1, 0]], headers={"X-Request-ID": "r-1"})
        assert response.status_code == 200 and response.json() == expected
        assert response.headers["x-request-id"] == "r-1"
        assert response.headers["content-type"] == "application/json"
        for path in ("/v2/models/iris-knn/infer", "/v2/models/iris-knn/versions/1/infer"):
            answer = client.post(path, json=V2_IRIS)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["name"] == "label"
        # Errors are the lane's own, in the same shape.
        assert_error(predict(client, "nope", [[5, 3, 1, 0]]), 404, "nope")
        assert_error(client.post("/v2/models/iris-knn/infer", content=b"{"), 400)
        # Anything else still goes through the full stack (here: broken on purpose).
        assert client.get("/health/live").status_code == 500


def test_the_lane_keeps_metrics_and_access_log(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir) as client:
        _break_the_full_stack(client)
        for _ in range(3):
            assert predict(client, "iris-knn", [[5, 3, 1, 0]]).status_code == 200
            assert client.post("/v2/models/iris-knn/infer", json=V2_IRIS).status_code == 200
        client.app.middleware_stack = None  # rebuilt: /metrics takes the full stack
        text = client.get("/metrics").text
    for endpoint in ("predict", "infer"):
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("synergy_requests_total{")
            and f'endpoint="{endpoint}"' in line
            and 'status="200"' in line
        )
        assert float(line.rsplit(" ", 1)[1]) == 3.0, line


def test_paths_the_routes_would_not_match_are_not_taken(client: Any) -> None:
    for path in (
        "/v1/models/a/b:predict",
        "/v1/models/:predict",
        "/v2/models/a/b/infer",
        "/v2/models/a/versions//infer",
    ):
        response = client.post(path, json={"instances": [[1, 2, 3, 4]]})
        assert_error(response, 404)


def test_with_cors_a_cross_origin_request_gets_its_headers(tiny_models_dir: Path) -> None:
    origin = {"Origin": "https://app.example"}
    with running_app(tiny_models_dir, cors_origins=["https://app.example"]) as client:
        plain = predict(client, "iris-knn", [[5, 3, 1, 0]])
        crossed = predict(client, "iris-knn", [[5, 3, 1, 0]], headers=origin)
        assert crossed.json() == plain.json()
        assert crossed.headers["access-control-allow-origin"] == "https://app.example"
        infer = client.post("/v2/models/iris-knn/infer", json=V2_IRIS, headers=origin)
        assert infer.status_code == 200
        assert infer.headers["access-control-allow-origin"] == "https://app.example"
        assert infer.json() == client.post("/v2/models/iris-knn/infer", json=V2_IRIS).json()


def test_keys_are_required_on_the_lane(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, api_keys=["k1"]) as client:
        _break_the_full_stack(client)
        assert_error(predict(client, "iris-knn", [[5, 3, 1, 0]]), 401, "API key")
        response = client.post("/v2/models/iris-knn/infer", json=V2_IRIS)
        assert_error(response, 401, "API key")
        authorized = {"Authorization": "Bearer k1"}
        assert predict(client, "iris-knn", [[5, 3, 1, 0]], headers=authorized).status_code == 200


def test_the_body_limit_holds_on_the_lane(tiny_models_dir: Path) -> None:
    with running_app(tiny_models_dir, max_body_bytes=1024) as client:
        _break_the_full_stack(client)
        big = {"instances": [[5, 3, 1, 0]] * 200}
        assert_error(client.post("/v1/models/iris-knn:predict", json=big), 413, "over the limit")
        assert_error(client.post("/v2/models/iris-knn/infer", json=big), 413, "over the limit")
