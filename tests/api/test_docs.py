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
