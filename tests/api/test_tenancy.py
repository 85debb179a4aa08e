"""Feedback tenancy (docs/security.md): a prediction belongs to the API key that made it;
request ids are per key; only that key or an admin key labels it; figures per key or for all;
a store that cannot write answers a clear 503, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_error, running_app

KEY_A, KEY_B, ADMIN = "tenant-a-0123456789", "tenant-b-0123456789", "admin-0123456789"
SETOSA = [5.1, 3.5, 1.4, 0.2]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def tenants(tiny_models_dir: Path) -> Iterator[Any]:
    with running_app(
        tiny_models_dir,
        api_keys=[KEY_A, KEY_B],
        admin_api_keys=[ADMIN],
        store_flush_interval_ms=60_000,
    ) as client:
        yield client


def _predict(client: Any, key: str, request_id: str) -> None:
    response = client.post(
        "/v1/models/iris-knn:predict",
        json={"instances": [SETOSA]},
        headers={**_auth(key), "X-Request-ID": request_id},
    )
    assert response.status_code == 200, response.text


def _feedback(client: Any, key: str, request_id: str, label: str) -> Any:
    return client.post(
        "/v1/models/iris-knn:feedback",
        json={"request_id": request_id, "labels": [label]},
        headers=_auth(key),
    )


def _mine(client: Any, key: str) -> dict[str, Any]:
    response = client.get("/v1/models/iris-knn/monitoring?rows=mine", headers=_auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["caller"] == "this key"
    version: dict[str, Any] = body["versions"][0]
    return version


def test_another_key_cannot_label_a_prediction(tenants: Any) -> None:
    _predict(tenants, KEY_A, "order-1")
    assert_error(_feedback(tenants, KEY_B, "order-1", "virginica"), 404, "with this API key")
    assert _mine(tenants, KEY_B)["rows_with_feedback"] == 0
    assert _feedback(tenants, KEY_A, "order-1", "setosa").status_code == 200
    # An admin key may label anyone's prediction.
    assert _feedback(tenants, ADMIN, "order-1", "setosa").status_code == 200


def test_a_reused_request_id_never_captures_another_keys_feedback(tenants: Any) -> None:
    _predict(tenants, KEY_A, "shared-id")
    _predict(tenants, KEY_B, "shared-id")  # later, same id: B's own prediction
    a_before = _mine(tenants, KEY_A)["rows_with_feedback"]
    answer = _feedback(tenants, KEY_B, "shared-id", "virginica")
    assert answer.status_code == 200, answer.text
    assert _mine(tenants, KEY_A)["rows_with_feedback"] == a_before  # A's rows untouched
    assert _mine(tenants, KEY_B)["accuracy"]["all_time"]["correct"] == 0
    assert _feedback(tenants, KEY_A, "shared-id", "setosa").status_code == 200
    overall = tenants.get("/v1/models/iris-knn/monitoring", headers=_auth(KEY_A)).json()
    assert overall["caller"] == "all"
    mine_a, mine_b = _mine(tenants, KEY_A), _mine(tenants, KEY_B)
    assert overall["versions"][0]["rows_predicted"] >= (
        mine_a["rows_predicted"] + mine_b["rows_predicted"]
    )


def test_a_store_that_cannot_write_answers_503(
    tenants: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    _predict(tenants, KEY_A, "disk-full")
    store = tenants.app.state.monitor.store

    def full(*_: Any) -> None:
        raise OperationalError("UPDATE", {}, Exception("database or disk is full"))

    monkeypatch.setattr(store, "set_feedback", full)
    answer = _feedback(tenants, KEY_A, "disk-full", "setosa")
    assert_error(answer, 503, "disk is full")
    assert "retry-after" in answer.headers
