"""Swagger UI and ReDoc are served locally, and every documented example works as is."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import MODEL_NAMES


def test_docs_pages_use_only_local_assets(client: Any) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            assert client.get(asset).status_code == 200, asset
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html


def test_openapi_documents_one_predict_operation_per_model(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    for name in MODEL_NAMES:
        operation = schema["paths"][f"/v1/models/{name}:predict"]["post"]
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert examples, name
        for example in examples.values():
            response = client.post(f"/v1/models/{name}:predict", json=example["value"])
            assert response.status_code == 200, (name, response.text)
        versioned = schema["paths"][f"/v1/models/{name}/versions/{{version}}:predict"]["post"]
        version = next(iter(versioned["parameters"][0]["examples"].values()))["value"]
        assert (
            client.post(
                f"/v1/models/{name}/versions/{version}:predict",
                json=next(iter(examples.values()))["value"],
            ).status_code
            == 200
        )
    assert "/v1/models/mnist-cnn:predict-image" in schema["paths"]


def test_every_path_parameter_is_prefilled_with_something_that_works(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            parameters = {
                p["name"]: p for p in operation.get("parameters", []) if p["in"] == "path"
            }
            if not parameters or method != "get":
                continue
            values = {n: next(iter(p["examples"].values()))["value"] for n, p in parameters.items()}
            response = client.get(path.format(**values))
            assert response.status_code == 200, (path, values, response.text)


def _responses(schema: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (path, method, status, response)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
    ]


def test_each_predict_operation_shows_a_real_response_of_its_own_model(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    for name in MODEL_NAMES:
        operation = schema["paths"][f"/v1/models/{name}:predict"]["post"]
        shown = operation["responses"]["200"]["content"]["application/json"]["example"]
        request = next(iter(operation["requestBody"]["content"]["application/json"]["examples"]))
        assert shown["model"] == name and shown["predictions"], name
        # What the model really answers to the first documented request is what is shown.
        body = operation["requestBody"]["content"]["application/json"]["examples"][request]
        real = client.post(f"/v1/models/{name}:predict", json=body["value"]).json()
        assert real["predictions"][0]["label"] == shown["predictions"][0]["label"], name
        invalid = operation["responses"]["422"]["content"]["application/json"]["example"]
        answered = client.post(f"/v1/models/{name}:predict", json={"instances": [None]})
        assert answered.status_code == 422 and answered.json() == invalid, name


def test_the_docs_describe_only_responses_the_service_gives(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    text = str(schema)
    assert "HTTPValidationError" not in text and "'detail'" not in text
    for path, method, status, response in _responses(schema):
        if int(status) < 400 or path.endswith("ready"):  # readiness 503s carry the states
            continue
        if path == "/health/ready/{name}" and status == "503":  # the model's states, too
            continue
        content = response["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
        if path.startswith("/v2"):
            assert status != "422", f"{method} {path}: V2 answers bad input with 400"
        if "example" in content:
            assert set(content["example"]) == {"error"}, (path, status)


def test_not_found_examples_name_the_models_that_exist(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    real = client.get("/v1/models/iris").json()["error"]
    examples = [
        response["content"]["application/json"].get("example")
        for _, _, status, response in _responses(schema)
        if status == "404"
    ]
    assert examples and all(example == {"error": real} for example in examples if example)
    error_schema = schema["components"]["schemas"]["ErrorResponse"]["properties"]["error"]
    assert error_schema["examples"] == [real]
    assert all(name in real for name in MODEL_NAMES)


def test_the_openapi_document_is_valid_openapi_3_1(client: Any) -> None:
    """Checked by a maintained validator (openapi-spec-validator), every error listed: client
    generators and gateways refuse an invalid document."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    errors = [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in OpenAPIV31SpecValidator(schema).iter_errors()
    ]
    assert errors == []
