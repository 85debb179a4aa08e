"""Tabular input: named features (any order) or a list in the card's feature order."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from app.attributions.base import Explainer
from app.attributions.tabular import TabularExplainer
from app.budget import RequestBudget
from app.codecs.v2 import NUMERIC_TYPES, TensorSpec
from app.errors import InvalidInput
from app.html import table
from app.kinds.base import (
    NO_WARNINGS,
    InputAdapter,
    InputLimits,
    InputWarning,
    RowWarnings,
    plain_numeric_rows,
)
from app.kinds.report import feature_examples
from app.kinds.statistics import InputStatistics
from app.runtimes.base import Model
from app.schemas.card import ModelCard, OutOfDomainChecks, TabularInput
from app.schemas.predict import FLOAT32_MAX, json_kind, model_title
from app.schemas.predict import Feature as FeatureNumber
from app.settings import ExplainSettings


class TabularAdapter(InputAdapter):
    """Named features (any order) or a list in the card's feature order; V2: `features`,
    any numeric datatype, [N, n_features]."""

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        assert isinstance(card.input, TabularInput)
        self.spec = card.input
        self.feature_names = [feature.name for feature in card.input.features]
        # The training range with its margin (card.out_of_domain), once loaded.
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        spec = card.input
        assert isinstance(spec, TabularInput)
        named = create_model(  # type: ignore[call-overload]
            f"{model_title(card.name)}Features",
            __config__=ConfigDict(extra="forbid"),
            **{
                feature.name: (
                    FeatureNumber,
                    Field(description=" ".join(filter(None, [feature.description, feature.unit]))),
                )
                for feature in spec.features
            },
        )
        listed = Annotated[
            list[FeatureNumber],
            Field(
                min_length=spec.n_features,
                max_length=spec.n_features,
                description=f"The {spec.n_features} features in this order: "
                + ", ".join(f.name for f in spec.features),
            ),
        ]
        return Annotated[
            Annotated[named, Tag("object")] | Annotated[listed, Tag("array")],
            Discriminator(json_kind),
        ]

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        return TabularStatistics(card)

    explanation_method = (
        "Shapley values of the features for the predicted class's probability, against "
        "the training mean: exact (all coalitions) for few features, antithetic permutation "
        "sampling for more; a KNN also returns its k nearest training examples."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        return TabularExplainer(
            self.card,
            model.predict,
            feature_names=self.feature_names,
            estimator=model.estimator,
            input_mean=model.input_mean(),
            exact_max_features=settings.explain_exact_max_features,
            permutations=settings.explain_permutations,
        )

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        spec = card.input
        assert isinstance(spec, TabularInput)
        return f"{spec.n_features} numeric features" + table(
            ["Feature", "Unit", "Description"],
            [
                [escape(f.name), escape(f.unit or ""), escape(f.description or "")]
                for f in spec.features
            ],
        )

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        assert isinstance(card.input, TabularInput)
        return feature_examples([f.name for f in card.input.features], examples)

    zeros_example = True
    out_of_domain_check = "feature-range"  # card.out_of_domain: see _warn

    @classmethod
    def record_rows(cls, card: ModelCard, records: list[Any]) -> list[Any] | None:
        assert isinstance(card.input, TabularInput)
        features = card.input.features
        return [np.array([row[f.name] for f in features], dtype=np.float32) for row in records]

    @property
    def instance_help(self) -> str:
        names = ", ".join(self.feature_names)
        count = self.spec.n_features
        return (
            f"an object with the {count} features {{{names}}} or a list of "
            f"{count} numbers in that order"
        )

    @property
    def tensor_spec(self) -> TensorSpec:
        count = self.spec.n_features
        return TensorSpec(
            "features",
            NUMERIC_TYPES,
            (count,),
            f"FP32 [N, {count}], features in the order " + ", ".join(self.feature_names),
            tuple((name, "FP32") for name in self.feature_names),
        )

    def tensor_example(self, instance: Any) -> dict[str, Any]:
        if isinstance(instance, dict):
            instance = [instance[name] for name in self.feature_names]
        return {"datatype": "FP32", "shape": [1, len(instance)], "data": [instance]}

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        return plain_numeric_rows(
            body, max_instances, (len(self.feature_names),), None, self.feature_names
        )

    def max_values(self, max_instances: int) -> int | None:
        return max_instances * len(self.feature_names)

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> np.ndarray:
        if isinstance(instance, BaseModel):
            instance = [getattr(instance, name) for name in self.feature_names]
        row = np.asarray(instance, dtype=np.float64)
        outside = ~(np.abs(row) <= FLOAT32_MAX)  # finite in JSON, but beyond float32's ±3.4e38
        if outside.any():
            raise InvalidInput(self._out_of_range(int(np.flatnonzero(outside)[0])))
        return row.astype(np.float32)

    def tensor_rows(
        self, datatype: str, values: np.ndarray, budget: RequestBudget | None
    ) -> list[Any]:
        """A numeric [N, F] tensor checked in one pass (not row by row: a 256-row request
        spent a fifth of its event-loop time in `to_row`), then split into N row views."""
        if datatype == "BYTES":
            return super().tensor_rows(datatype, values, budget)
        matrix = values.reshape(len(values), -1)
        if matrix.dtype != np.float32:
            matrix = matrix.astype(np.float64, copy=False)
        outside = ~(np.abs(matrix) <= FLOAT32_MAX)
        if outside.any():
            index, column = (int(i) for i in np.argwhere(outside)[0])
            raise InvalidInput(
                f"input {self.tensor_spec.name}[{index}]: {self._out_of_range(column)}"
            )
        return list(matrix.astype(np.float32, copy=False))

    def _out_of_range(self, column: int) -> str:
        return (
            f"{self.feature_names[column]} is out of range: features must be within "
            f"±{FLOAT32_MAX:.3g} (float32)"
        )

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return np.stack(rows)

    def check_rows(self, examples: list[Any], count: int, seed: int) -> list[Any] | None:
        """`examples`, then rows drawn uniformly within the training range (half), within
        three times its width around it (a quarter) and within ten times (a quarter), where
        the range is the card's (`out_of_domain`) or else the examples' span; None with
        neither."""
        if self._low is not None and self._high is not None:
            low, high = self._low.astype(np.float64), self._high.astype(np.float64)
        elif examples:
            low, high = np.min(examples, axis=0), np.max(examples, axis=0)
        else:
            return None
        middle, width = (low + high) / 2, np.maximum(high - low, 1e-3)
        rng = np.random.default_rng(seed)
        draws = max(count - len(examples), 0)
        scale = np.repeat([0.5, 1.5, 5.0], [draws - 2 * (draws // 4), draws // 4, draws // 4])
        offsets = rng.uniform(-1.0, 1.0, (draws, len(self.feature_names)))
        drawn = middle + offsets * width * scale[:, None]
        return examples + list(drawn.astype(np.float32))

    def load(self) -> None:
        checks = self.card.out_of_domain
        if checks is not None and checks.feature_low is not None and checks.feature_high:
            self._low = np.asarray(checks.feature_low, dtype=np.float32)
            self._high = np.asarray(checks.feature_high, dtype=np.float32)

    def _warn(
        self,
        checks: OutOfDomainChecks,
        rows: list[Any],
        features: np.ndarray,
        embedded: np.ndarray | None,
    ) -> list[RowWarnings] | None:
        low, high = self._low, self._high
        if low is None or high is None:
            return None
        outside = (features < low) | (features > high)
        if not outside.any():  # the common case: one vectorised test per batch
            return None
        warned: list[RowWarnings] = []
        for row, flags in zip(features, outside, strict=True):
            if not flags.any():
                warned.append(NO_WARNINGS)
                continue
            named = [
                f"{self.feature_names[i]} = {float(row[i]):.4g} (trained on "
                f"{float(low[i]):.4g} to {float(high[i]):.4g})"
                for i in np.flatnonzero(flags).tolist()
            ]
            warned.append(
                (
                    InputWarning(
                        "feature_out_of_range",
                        "outside the range the model was trained on, so its answer is a guess: "
                        + "; ".join(named),
                    ),
                )
            )
        return warned

    def uncomputable(self, row: Any) -> InvalidInput:
        magnitudes = np.abs(np.asarray(row, dtype=np.float64))
        column = int(np.argmax(magnitudes))
        return InvalidInput(
            f"{self.feature_names[column]} = {float(row[column]):.3g} is out of the range the "
            "model can compute (its arithmetic overflowed float32 on this instance); send "
            "values in the range the model was trained on"
        )


class TabularStatistics(InputStatistics):
    """Each feature, as is; stored as the float32 row."""

    def __init__(self, card: ModelCard) -> None:
        assert isinstance(card.input, TabularInput)
        self.names = [feature.name for feature in card.input.features]

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        return np.asarray(np.stack([np.asarray(r, dtype=np.float64) for r in rows]))

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        return [np.asarray(r, dtype=np.float32).tobytes() for r in rows]
