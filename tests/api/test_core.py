"""The protocol-neutral core (app.core): both protocols go through one select and one infer,
and a completed prediction is announced to subscribers (monitoring's hook)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.events import PredictionEvent
from tests.conftest import predict

IRIS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_every_protocol_announces_its_completed_predictions(client: Any) -> None:
    core = client.app.state.service.core
    events: list[PredictionEvent] = []
    core.subscribe(events.append)
    v1 = predict(client, "iris-knn", IRIS)
    tensor = {"name": "features", "datatype": "FP32", "shape": [2, 4], "data": IRIS}
    v2 = client.post("/v2/models/iris-knn/versions/1/infer", json={"inputs": [tensor]})
    assert v1.status_code == v2.status_code == 200
    assert [e.endpoint for e in events] == ["predict", "infer_version"]
    assert [e.protocol for e in events] == ["v1", "v2"]
    for event, response in zip(events, (v1, v2), strict=True):
        assert event.request_id == response.headers["x-request-id"]
        assert (event.model, event.version) == ("iris-knn", 1)
        assert list(event.labels) == ["setosa", "versicolor", "virginica"]
        assert len(event.rows) == 2 and event.probabilities.shape == (2, 3)
        assert np.allclose(event.probabilities.sum(axis=1), 1.0)
    # Both protocols answer what the core computed.
    listed = [list(p["probabilities"].values()) for p in v1.json()["predictions"]]
    assert np.allclose(listed, events[0].probabilities)
    assert np.allclose(v2.json()["outputs"][1]["data"], events[1].probabilities.ravel(), atol=1e-7)


def test_a_failing_subscriber_never_fails_the_prediction(client: Any) -> None:
    def broken(event: PredictionEvent) -> None:
        raise RuntimeError("monitoring is down")

    client.app.state.service.core.subscribe(broken)
    assert predict(client, "iris-knn", IRIS[:1]).status_code == 200


def test_predict_has_one_implementation_behind_both_paths(client: Any) -> None:
    from app.api.predict import PredictEndpoint

    endpoints = {
        id(route.endpoint): route.endpoint
        for route in client.app.routes
        if getattr(route, "path", "").endswith(":predict")
    }
    assert len(endpoints) == 1
    assert isinstance(next(iter(endpoints.values())), PredictEndpoint)
    versioned = client.post("/v1/models/iris-knn/versions/1:predict", json={"instances": IRIS[:1]})
    assert versioned.status_code == 200 and versioned.json()["version"] == 1
    # The metrics still name the versioned path's endpoint as its route did.
    counted = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("synergy_requests_total{") and 'endpoint="predict_version"' in line
    ]
    assert counted and 'model="iris-knn"' in counted[0]
