"""A named table: features of mixed types (numbers, category strings, booleans, missing
values), featurised as a pandas DataFrame with the card's columns (what a ColumnTransformer
pipeline fitted on a DataFrame takes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from html import escape
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    create_model,
)

from app.attributions.base import Explainer
from app.attributions.table import TableShapley
from app.budget import RequestBudget
from app.codecs.v2 import NamedTensors, TensorSpec
from app.errors import BadRequest, InvalidInput
from app.html import table
from app.kinds.base import InputAdapter, InputLimits
from app.kinds.report import feature_examples
from app.kinds.statistics import InputStatistics
from app.kinds.table_columns import MAX_STRING_CHARS, column_values, feature_spec
from app.runtimes.base import Model
from app.schemas.card import Feature, ModelCard, TableInput
from app.schemas.predict import FLOAT32_MAX, model_title
from app.schemas.predict import Feature as FeatureNumber
from app.settings import ExplainSettings

_FEATURE_TYPES: dict[str, Any] = {
    "number": FeatureNumber,
    "string": Annotated[str, Strict(), StringConstraints(max_length=MAX_STRING_CHARS)],
    "boolean": Annotated[bool, Strict()],
}


def _describe(feature: Feature) -> str:
    kind = {"number": "a number", "string": "a string", "boolean": "true/false"}[feature.dtype]
    return f"{feature.name} ({kind}{', or null' if feature.missing else ''})"


# What a feature's values are, as V2 datatypes (for the metadata).
FEATURE_DATATYPES = {"number": "FP32", "string": "BYTES", "boolean": "BOOL"}


class TableAdapter(InputAdapter):
    """Named features of mixed types, an object per instance (or a list in the card's
    order); V2: one input tensor per feature, shape [N] (`table_columns`), or `rows`, BYTES
    [N], each element one instance as a JSON object."""

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        assert isinstance(card.input, TableInput)
        self.features = card.input.features
        self.feature_names = [feature.name for feature in self.features]

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        spec = card.input
        assert isinstance(spec, TableInput)

        def field(feature: Feature) -> tuple[Any, Any]:
            kind = _FEATURE_TYPES[feature.dtype]
            description = " ".join(filter(None, [feature.description, feature.unit]))
            if feature.categories:
                description += " (seen: " + ", ".join(feature.categories[:20]) + ")"
            if feature.missing:
                return (kind | None, Field(description=description + "; null if missing"))
            return (kind, Field(description=description))

        return create_model(  # type: ignore[call-overload]
            f"{model_title(card.name)}Row",
            __config__=ConfigDict(extra="forbid"),
            **{feature.name: field(feature) for feature in spec.features},
        )

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        assert isinstance(card.input, TableInput)
        return TableStatistics(card.input)

    explanation_method = (
        "Shapley values (antithetic permutation sampling) of the features, or of groups of "
        "neighbouring features, for the predicted class's probability."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        def outputs(rows: list[Any]) -> Any:
            return model.predict(self.featurize(rows))

        return TableShapley(
            self.card, self.features, outputs, permutations=settings.explain_permutations
        )

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        spec = card.input
        assert isinstance(spec, TableInput)
        return f"{spec.n_features} named features of mixed types" + table(
            ["Feature", "Type", "Missing allowed", "Categories seen"],
            [
                [
                    escape(f.name),
                    escape(f.dtype),
                    "yes" if f.missing else "no",
                    escape(", ".join(f.categories or [])),
                ]
                for f in spec.features
            ],
        )

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        assert isinstance(card.input, TableInput)
        return feature_examples([f.name for f in card.input.features], examples)

    zeros_example = True

    @classmethod
    def record_rows(cls, card: ModelCard, records: list[Any]) -> list[Any] | None:
        assert isinstance(card.input, TableInput)
        features = card.input.features
        return [tuple(row[f.name] for f in features) for row in records]

    @property
    def instance_help(self) -> str:
        return "an object with the features " + ", ".join(map(_describe, self.features))

    @property
    def tensor_spec(self) -> TensorSpec:
        return TensorSpec(
            "rows",
            ("BYTES",),
            (),
            "BYTES [N], each element one instance as a JSON object of its features: "
            + ", ".join(map(_describe, self.features)),
            tuple((f.name, FEATURE_DATATYPES[f.dtype]) for f in self.features),
        )

    @cached_property
    def feature_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(feature_spec(feature) for feature in self.features)

    def feature_rows(self, tensors: NamedTensors, budget: RequestBudget | None) -> list[Any]:
        columns = [column_values(f, tensors[f.name][1]) for f in self.features]
        return list(zip(*columns, strict=True))

    def example_inputs(self, instance: Any) -> list[dict[str, Any]]:
        values = (
            instance if isinstance(instance, list) else [instance[n] for n in self.feature_names]
        )
        return [
            {"name": spec.name, "datatype": spec.datatypes[0], "shape": [1], "data": [value]}
            for spec, value in zip(self.feature_specs, values, strict=True)
        ]

    def tensor_example(self, instance: Any) -> dict[str, Any]:
        return {"datatype": "BYTES", "shape": [1], "data": [orjson.dumps(instance).decode()]}

    def bytes_rows(
        self, elements: np.ndarray, where: str, budget: RequestBudget | None
    ) -> list[Any]:
        rows = []
        for index, element in enumerate(elements):
            try:
                instance = self.request_model.model_validate(
                    {"instances": [orjson.loads(element)]}
                ).instances[0]  # type: ignore[attr-defined]
            except (orjson.JSONDecodeError, ValidationError) as exc:
                raise BadRequest(
                    f"{where.format(index)} is not a JSON object of this model's features "
                    f"({str(exc).splitlines()[0]}); each element: {self.instance_help}"
                ) from None
            rows.append(self.to_row(instance, budget))
        return rows

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> tuple[Any, ...]:
        if isinstance(instance, BaseModel):
            values = [getattr(instance, name) for name in self.feature_names]
        else:
            values = list(instance)
        for feature, value in zip(self.features, values, strict=True):
            if value is None and not feature.missing:
                raise InvalidInput(f"{feature.name} is missing, and the model needs a value")
            if feature.dtype == "number" and value is not None and not abs(value) <= FLOAT32_MAX:
                raise InvalidInput(
                    f"{feature.name} is out of range: numbers must be within "
                    f"±{FLOAT32_MAX:.3g} (float32)"
                )
        return tuple(values)

    def featurize(self, rows: list[Any]) -> Any:
        import pandas as pd

        columns: dict[str, Any] = {}
        for index, feature in enumerate(self.features):
            values = [row[index] for row in rows]
            if feature.dtype == "number":
                columns[feature.name] = np.array(
                    [math.nan if v is None else v for v in values], dtype=np.float64
                )
            elif feature.dtype == "boolean" and all(v is not None for v in values):
                columns[feature.name] = np.array(values, dtype=bool)
            else:  # strings (and booleans with gaps): objects, a missing value is NaN
                columns[feature.name] = np.array(
                    [math.nan if v is None else v for v in values], dtype=object
                )
        return pd.DataFrame(columns)


class TableStatistics(InputStatistics):
    """Each feature: numbers as they are, strings and booleans as categories (see
    `table_statistics`); stored as the row's JSON list."""

    def __init__(self, spec: TableInput) -> None:
        self.spec = spec
        self.names = [feature.name for feature in spec.features]

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        return table_statistics(self.spec, rows)

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        return [orjson.dumps(list(r)) for r in rows]

    def categories(self, index: int) -> list[str] | None:
        return feature_categories(self.spec.features[index])


OTHER_CATEGORY = "(other)"
MISSING_CATEGORY = "(missing)"


def feature_categories(feature: Feature) -> list[str] | None:
    """The categories a string or boolean feature's drift is counted over (None: a number):
    those the card records, then every other value, then missing."""
    if feature.dtype == "number":
        return None
    known = ["false", "true"] if feature.dtype == "boolean" else list(feature.categories or [])
    return [*known, OTHER_CATEGORY, MISSING_CATEGORY]


def table_statistics(spec: TableInput, rows: Sequence[Any]) -> np.ndarray:
    """(N, F) float64 of a table's rows: numbers as they are (NaN when missing); strings and
    booleans as the index of their category in `feature_categories` (the last two: another
    value, missing)."""
    out = np.empty((len(rows), len(spec.features)))
    for column, feature in enumerate(spec.features):
        categories = feature_categories(feature)
        index = {c: i for i, c in enumerate(categories or [])}
        for row_index, row in enumerate(rows):
            value = row[column]
            if categories is None:
                out[row_index, column] = np.nan if value is None else float(value)
            elif value is None:
                out[row_index, column] = len(categories) - 1
            else:
                text = str(value).lower() if feature.dtype == "boolean" else str(value)
                out[row_index, column] = index.get(text, len(categories) - 2)
    return out
