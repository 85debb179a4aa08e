"""Make the OpenAPI document say only what the service really does.

FastAPI documents a 422 `{"detail": [...]}` on every operation that takes parameters; the
service answers every error as `{"error": "..."}`, and V2 answers input errors with 400. The
error and 200 examples are produced here from the served models (their cards' recorded
held-out predictions, the registry's real not-found message), so the docs cannot drift from
the repository they describe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.errors import ServingError
from app.repository import ModelRegistry
from app.schemas.card import ModelCard
from app.tasks import task_of

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def predict_response_example(card: ModelCard) -> dict[str, Any]:
    """A real `:predict` response of this model: its card's held-out examples, with the
    probabilities recorded right after training (the same the server replays at start-up)."""
    recorded = [card.recorded_output(example) for example in card.examples]
    outputs = [values for values in recorded if values is not None]
    predictions = (
        task_of(card).encode_v1(card, np.array(outputs, dtype=np.float64)) if outputs else []
    )
    return {"model": card.name, "version": card.version, "predictions": predictions}


def unknown_model_message(registry: ModelRegistry) -> str:
    """The 404 the service gives for a model it does not have, as it gives it."""
    try:
        registry.versions("iris")
    except ServingError as exc:
        return exc.message
    return "unknown model"  # only if a model is really called "iris"


def conform_error_responses(schema: dict[str, Any], unknown_model: str) -> None:
    """Rewrite FastAPI's generated error responses into the service's real ones, in place.

    - FastAPI's generated 422 is kept, in the `{"error"}` shape, only where FastAPI does
      validate something (a non-string parameter other than a version, or a body it parses);
      V2 operations validate their own inputs and answer 400 (documented per route).
    - Every 404 example names a model the way the service does, listing the real models.
    """
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            generated = responses.get("422")
            if generated is not None and _is_fastapi_validation(generated):
                del responses["422"]
                if not path.startswith("/v2") and _fastapi_validates(operation):
                    responses["422"] = {
                        "description": "A parameter does not validate; the message says "
                        "which and how to fix it.",
                        "content": {"application/json": {"schema": ERROR_REF}},
                    }
            not_found = responses.get("404", {}).get("content", {}).get("application/json")
            if not_found is not None and "example" in not_found:
                not_found["example"] = {"error": unknown_model}
    components = schema.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    error_field = components.get("ErrorResponse", {}).get("properties", {}).get("error")
    if error_field is not None:
        error_field["examples"] = [unknown_model]


def _fastapi_validates(operation: dict[str, Any]) -> bool:
    """Whether FastAPI itself can refuse a request to this operation (422). A path's version
    does not count: a malformed one is a 400 from the one version parser on every route."""
    if "requestBody" in operation:
        return True
    return any(
        set(parameter.get("schema", {})) - {"type", "title", "description"}
        or parameter.get("schema", {}).get("type") != "string"
        for parameter in operation.get("parameters", [])
        if (parameter.get("in"), parameter.get("name")) != ("path", "version")
    )


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    reference = str(content.get("schema", {}).get("$ref", ""))
    return reference.endswith("/HTTPValidationError")


def predict_request_body(
    card: Any, request_model: Any, components: dict[str, Any]
) -> dict[str, Any]:
    """The request body of a model's `:predict`-shaped operation (`:predict`, `:explain`): its
    schema, added to `components`, and the card's held-out examples as working examples."""
    schema = request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    schema.pop("examples", None)
    components[request_model.__name__] = schema
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"},
                "examples": {
                    f"example-{index}": {
                        "summary": f"a real held-out example (true label: {example.label})",
                        "value": {"instances": [example.instance]},
                    }
                    for index, example in enumerate(card.examples, start=1)
                },
            }
        },
    }
