"""Response models of the friendly predict API, and the value types its requests share.

The instance schema depends on the model's input kind (named iris features, 20 numbers, a
28x28 grid or a base64 image, review text): each kind builds it (`app.kinds`), so each model
gets its own request model, with the card's feature names and a real example that works as is
in Swagger UI's "Try it out".
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
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


def json_kind(value: Any) -> str:
    """The tag of a JSON value for a discriminated union: "object" or "array"."""
    return "object" if isinstance(value, dict) else "array"


# Features are computed in float32: the adapter refuses what float32 cannot hold, and the
# schema says so (checked there, with one NumPy comparison, not per value here).
FLOAT32_MAX = float(np.finfo(np.float32).max)
Feature = Annotated[
    Number, Field(json_schema_extra={"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX})
]


def model_title(name: str) -> str:
    """A model name as a schema title part: `iris-knn` -> `IrisKnn`."""
    return "".join(
        part.capitalize() for part in name.replace(".", "-").replace("_", "-").split("-")
    )
