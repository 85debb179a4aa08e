"""Request and response models of the friendly predict API, built per model from its card.

The instance schema depends on the model (named iris features, 20 numbers, a 28x28 grid or a
base64 image, review text), so each model gets its own request model, with the card's feature
names and a real example that works as is in Swagger UI's "Try it out".
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StringConstraints,
    Tag,
    create_model,
)

from app.schemas.card import Feature as FeatureSpec
from app.schemas.card import (
    ImageInput,
    ModelCard,
    RawTextInput,
    TableInput,
    TabularInput,
    TextInput,
)

Number = Annotated[float, Strict(), AllowInfNan(False)]


class B64Image(BaseModel):
    """An encoded image (PNG, JPEG, ...) in base64, any size; converted the MNIST way."""

    model_config = ConfigDict(extra="forbid")
    b64: str = Field(min_length=1, description="base64 of the image file's bytes")


class PredictionWarning(BaseModel):
    """The input is unlike the model's training data (see docs/warnings.md for the codes)."""

    code: str = Field(
        description="Stable code: feature_out_of_range, unknown_words, too_few_words, "
        "unlike_training_images, several_digits (see docs/warnings.md).",
        examples=["feature_out_of_range"],
    )
    message: str = Field(description="What was found, in words.")


class Prediction(BaseModel):
    """One instance's prediction."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "virginica",
                    "probabilities": {"setosa": 0.0, "versicolor": 0.0909, "virginica": 0.9091},
                }
            ]
        }
    )
    label: str = Field(description="The most probable class.")
    probabilities: dict[str, float] = Field(
        description="Probability of every class label; they sum to 1. Each lies within "
        "[floor, 1 - (C-1)*floor], the card's out_of_domain.probability_floor."
    )
    warnings: list[PredictionWarning] = Field(
        default_factory=list,
        description="Why this answer may not be trusted (the input is unlike the training "
        "data); empty when there is nothing to say.",
    )


class PredictResponse(BaseModel):
    """Predictions in the order of the request's instances."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "iris-knn",
                    "version": 1,
                    "predictions": [
                        {
                            "label": "virginica",
                            "probabilities": {
                                "setosa": 0.0,
                                "versicolor": 0.0909,
                                "virginica": 0.9091,
                            },
                        }
                    ],
                }
            ]
        }
    )

    model: str
    version: int
    predictions: list[Prediction]


def _json_kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array"


# Features are computed in float32: the adapter refuses what float32 cannot hold, and the
# schema says so (checked there, with one NumPy comparison, not per value here).
FLOAT32_MAX = float(np.finfo(np.float32).max)
Feature = Annotated[
    Number, Field(json_schema_extra={"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX})
]


def _tabular_instance(spec: TabularInput, model_title: str) -> Any:
    named = create_model(  # type: ignore[call-overload]
        f"{model_title}Features",
        __config__=ConfigDict(extra="forbid"),
        **{
            feature.name: (
                Feature,
                Field(description=" ".join(filter(None, [feature.description, feature.unit]))),
            )
            for feature in spec.features
        },
    )
    listed = Annotated[
        list[Feature],
        Field(
            min_length=spec.n_features,
            max_length=spec.n_features,
            description=f"The {spec.n_features} features in this order: "
            + ", ".join(f.name for f in spec.features),
        ),
    ]
    return Annotated[
        Annotated[named, Tag("object")] | Annotated[listed, Tag("array")],
        Discriminator(_json_kind),
    ]


def _image_instance(spec: ImageInput) -> Any:
    # The 0..max range is documented here but checked by the adapter with one NumPy comparison:
    # 784 per-element range checks in the validator cost a fifth of an image request's parse.
    pixel = Annotated[Number, Field(json_schema_extra={"minimum": 0, "maximum": spec.max_value})]
    row = Annotated[list[pixel], Field(min_length=spec.width, max_length=spec.width)]
    grid = Annotated[
        list[row],
        Field(
            min_length=spec.height,
            max_length=spec.height,
            description=f"{spec.height}x{spec.width} grey levels 0-{spec.max_value:g}, "
            "white digit on black",
        ),
    ]
    return Annotated[
        Annotated[grid, Tag("array")] | Annotated[B64Image, Tag("object")],
        Discriminator(_json_kind),
    ]


def _text_instance(spec: TextInput, max_text_chars: int) -> Any:
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_text_chars),
        Field(description=f"Review text in English, up to {max_text_chars} characters."),
    ]


_FEATURE_TYPES: dict[str, Any] = {
    "number": Feature,
    "string": Annotated[str, Strict(), StringConstraints(max_length=10_000)],
    "boolean": Annotated[bool, Strict()],
}


def _table_instance(spec: TableInput, model_title: str) -> Any:
    def field(feature: FeatureSpec) -> tuple[Any, Any]:
        kind = _FEATURE_TYPES[feature.dtype]
        description = " ".join(filter(None, [feature.description, feature.unit]))
        if feature.categories:
            description += " (seen: " + ", ".join(feature.categories[:20]) + ")"
        if feature.missing:
            return (kind | None, Field(description=description + "; null if missing"))
        return (kind, Field(description=description))

    return create_model(  # type: ignore[call-overload]
        f"{model_title}Row",
        __config__=ConfigDict(extra="forbid"),
        **{feature.name: field(feature) for feature in spec.features},
    )


def _raw_text_instance(spec: RawTextInput, max_text_chars: int) -> Any:
    return Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_text_chars),
        Field(description=f"Text, up to {max_text_chars} characters."),
    ]


def instance_type(card: ModelCard, max_text_chars: int) -> Any:
    """The type of one instance of this model, as clients send it."""
    spec = card.input
    title = _title(card.name)
    if isinstance(spec, TabularInput):
        return _tabular_instance(spec, title)
    if isinstance(spec, TableInput):
        return _table_instance(spec, title)
    if isinstance(spec, ImageInput):
        return _image_instance(spec)
    if isinstance(spec, RawTextInput):
        return _raw_text_instance(spec, max_text_chars)
    return _text_instance(spec, max_text_chars)


def _title(name: str) -> str:
    return "".join(
        part.capitalize() for part in name.replace(".", "-").replace("_", "-").split("-")
    )


def predict_request_model(
    card: ModelCard, *, max_instances: int, max_text_chars: int, examples: list[Any]
) -> type[BaseModel]:
    """`{"instances": [...]}` for this model, with its limits and a working example."""
    instances_type: Any = list[instance_type(card, max_text_chars)]  # type: ignore[misc]
    model: type[BaseModel] = create_model(
        f"{_title(card.name)}PredictRequest",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"instances": examples}]}
        ),
        instances=(
            instances_type,
            Field(
                min_length=1,
                max_length=max_instances,
                description=f"1 to {max_instances} instances; one prediction comes back for each, "
                "in the same order.",
            ),
        ),
    )
    return model
