"""The one builder of the per-model OpenAPI operations: for each verb (`predict`, `explain`),
`/v1/models/{name}:{verb}`, `/v1/models/{name}/versions/{version}:{verb}` and, for a model
that takes image files, `/v1/models/{name}:{verb}-image`.

The verbs differ only in words, their 200 response and their error examples; the paths,
operation ids, version parameter, upload body and error responses are made here once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.schemas.responses import error_responses
from app.schemas.versions import MAX_VERSION

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@dataclass(frozen=True)
class ImageOperation:
    """The `:{verb}-image` operation of a model that takes image files."""

    summary: str
    description: str
    responses: dict[str, Any]
    parameters: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class ModelOperations:
    """What one verb documents for one model (its newest carded version)."""

    verb: str  # "predict" or "explain": the path's `:{verb}` and the operation ids
    tag: str
    name: str
    version: int
    summary: str  # of the unversioned operation
    version_summary: str
    description: str
    body: dict[str, Any]
    responses: dict[str, Any]
    image: ImageOperation | None = None

    def paths(self) -> dict[str, Any]:
        """`{path: {"post": operation}}` of every operation of this verb and model."""
        operation_name = self.name.replace("-", "_").replace(".", "_")
        common = {"tags": [self.tag], "description": self.description, "requestBody": self.body}
        paths: dict[str, Any] = {
            f"/v1/models/{self.name}:{self.verb}": {
                "post": {
                    **common,
                    "summary": self.summary,
                    "operationId": f"{self.verb}_{operation_name}",
                    "responses": self.responses,
                }
            },
            f"/v1/models/{self.name}/versions/{{version}}:{self.verb}": {
                "post": {
                    **common,
                    "summary": self.version_summary,
                    "operationId": f"{self.verb}_{operation_name}_version",
                    "parameters": [version_parameter(self.version)],
                    "responses": self.responses,
                }
            },
        }
        if self.image is not None:
            image: dict[str, Any] = {
                "tags": [self.tag],
                "summary": self.image.summary,
                "description": self.image.description,
                "operationId": f"{self.verb}_image_{operation_name}",
                "requestBody": image_upload_body(),
                "responses": self.image.responses,
            }
            if self.image.parameters:
                image["parameters"] = copy.deepcopy(list(self.image.parameters))
            paths[f"/v1/models/{self.name}:{self.verb}-image"] = {"post": image}
        return paths


def version_parameter(version: int) -> dict[str, Any]:
    """The `{version}` path parameter, pre-filled with a version that serves."""
    return {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        "description": "Model version (an integer)",
        "examples": {f"v{version}": {"summary": f"version {version}", "value": version}},
    }


def image_upload_body() -> dict[str, Any]:
    """The multipart body of an image upload (a fresh copy: the document is edited later)."""
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "contentMediaType": "application/octet-stream",
                            "description": "An image file with one digit.",
                        }
                    },
                }
            }
        },
    }


def schema_components(*models: type[BaseModel]) -> dict[str, Any]:
    """The component schemas of response models (and the models they refer to)."""
    components: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def documented_errors(codes: Sequence[int], examples: Mapping[int, str]) -> dict[str, Any]:
    """The error responses of an operation: each code's shared description and example, or
    the operation's own example where `examples` has one (what it really answers)."""
    responses: dict[str, Any] = {}
    for code, doc in error_responses(*codes).items():
        example = doc["content"]["application/json"]["example"]
        if int(code) in examples:
            example = {"error": examples[int(code)]}
        responses[str(code)] = {
            "description": doc["description"],
            "content": {"application/json": {"schema": ERROR_REF, "example": example}},
        }
    return responses
