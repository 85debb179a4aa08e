"""The OpenAPI document stays what it was before issue 21's reshape (ordering aside).

`fixtures/openapi-before-21.json` is the document the server gave at 7bf2c0c with the committed
models; the reshape moved the code that builds it, not what it says. A deliberate change to the
API regenerates the snapshot (`python -m tests.api.openapi_diff`) and says so in CHANGELOG.md.
The mnist-cnn operations' response examples were taken from the current document when that
model was retrained (issue 23): they are the committed model's own answers, not the API.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.openapi_diff import differences
from tests.conftest import COMMITTED_MODELS, running_app

SNAPSHOT = Path(__file__).parent / "fixtures" / "openapi-before-21.json"
# Issue 21's one deliberate change to the document: a malformed version in a path is a 400
# from the one version parser on every route (it was a 422 from FastAPI on the V1 routes, a
# 404 on the V2 ones).
DELIBERATE = sorted(
    [
        *(
            f"/paths//v1/models/{{name}}/versions/{{version}}{suffix}/get/responses/{change}"
            for suffix in ("", "/metrics", "/report")
            for change in ("400: added", "422: removed")
        ),
        "/paths//v1/models/{name}/versions/{version}/monitoring/get/responses/400: added",
        *(
            f"/paths//v2/models/{{name}}/versions/{{version}}{suffix}/get/responses/400: added"
            for suffix in ("", "/config", "/ready", "/stats")
        ),
        # Session 9: which engine computes a version (ONNX Runtime for a scikit-learn model).
        "/components/schemas/ModelVersionStatus/properties/engine: added",
        "/components/schemas/ServingInfo/properties/engine: added",
    ]
)


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    with running_app(COMMITTED_MODELS) as client:
        yield client.get("/openapi.json").json()


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return loaded


def test_the_document_is_the_one_before_the_reshape_but_for_the_deliberate_change(
    document: dict[str, Any], snapshot: dict[str, Any]
) -> None:
    assert sorted(differences(snapshot, document)) == DELIBERATE


def _first_operation(document: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"]["/v1/models/iris-knn/versions/{version}:predict"][
        "post"
    ]
    return operation


def _drop_operation(document: dict[str, Any]) -> None:
    del document["paths"]["/v1/models/iris-knn:explain"]


def _rename_parameter(document: dict[str, Any]) -> None:
    _first_operation(document)["parameters"][0]["name"] = "revision"


def _change_schema(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["ErrorResponse"]["properties"]["error"]["type"] = "object"


def _drop_response(document: dict[str, Any]) -> None:
    responses = _first_operation(document)["responses"]
    del responses[sorted(responses)[-1]]


def _reorder_example(document: dict[str, Any]) -> None:
    examples = document["paths"]["/v1/models/binary-mlp:predict"]["post"]["requestBody"]
    value = next(iter(examples["content"]["application/json"]["examples"].values()))["value"]
    value["instances"][0].reverse()


@pytest.mark.parametrize(
    "change", [_drop_operation, _rename_parameter, _change_schema, _drop_response, _reorder_example]
)
def test_a_changed_operation_parameter_schema_or_response_is_found(
    snapshot: dict[str, Any], change: Any
) -> None:
    changed = copy.deepcopy(snapshot)
    change(changed)
    assert differences(snapshot, changed) != []


def test_reordering_keys_parameters_and_required_fields_is_no_change(
    snapshot: dict[str, Any],
) -> None:
    reordered = json.loads(json.dumps(snapshot, sort_keys=False))
    reordered["paths"] = dict(reversed(list(reordered["paths"].items())))
    for operations in reordered["paths"].values():
        for operation in operations.values():
            operation.get("parameters", []).reverse()
    for schema in reordered["components"]["schemas"].values():
        schema.get("required", []).reverse()
    assert differences(snapshot, reordered) == []
