"""Raw text handed to the model as strings (the model tokenises it: a scikit-learn pipeline
that starts with a TfidfVectorizer, a Keras model with a TextVectorization layer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, StringConstraints

from app.attributions.base import Explainer
from app.attributions.table import WordShapley
from app.budget import RequestBudget
from app.codecs.v2 import TensorSpec
from app.kinds.base import InputLimits, named_rows
from app.kinds.report import text_examples, text_sample
from app.kinds.statistics import InputStatistics
from app.kinds.utf8 import Utf8TextAdapter
from app.runtimes.base import Model
from app.schemas.card import CardExample, ModelCard, RawTextInput
from app.settings import ExplainSettings


class RawTextAdapter(Utf8TextAdapter):
    """A string per instance, passed to the model as is; V2: `text`, BYTES [N] of UTF-8."""

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        super().__init__(card, folder, limits)
        assert isinstance(card.input, RawTextInput)

    @classmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        return Annotated[
            str,
            StringConstraints(min_length=1, max_length=max_text_chars),
            Field(description=f"Text, up to {max_text_chars} characters."),
        ]

    @classmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        return RawTextStatistics()

    explanation_method = (
        "Shapley values (antithetic permutation sampling) of the words, or of runs of "
        "neighbouring words, for the predicted class's probability."
    )

    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        def outputs(rows: list[Any]) -> Any:
            return model.predict(self.featurize(rows))

        return WordShapley(self.card, outputs, permutations=settings.explain_text_permutations)

    @classmethod
    def report_inputs(cls, card: ModelCard) -> str:
        return "<p>Raw text, given to the model as is (it tokenises it itself).</p>"

    @classmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        return text_examples(examples)

    @classmethod
    def report_sample(cls, card: ModelCard, example: CardExample) -> str:
        return text_sample(example)

    @classmethod
    def record_rows(cls, card: ModelCard, records: list[Any]) -> list[Any] | None:
        return list(records)

    @property
    def instance_help(self) -> str:
        return f"a string of text, 1 to {self.limits.max_text_chars} characters"

    @property
    def tensor_spec(self) -> TensorSpec:
        return TensorSpec("text", ("BYTES",), (), "BYTES [N] of UTF-8 text")

    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> str:
        return str(instance)

    def rows_from(self, rows: list[Any]) -> list[Any]:
        return [str(getattr(row, "text", row)) for row in rows]

    def featurize(self, rows: list[Any]) -> np.ndarray:
        return np.array(named_rows(str, rows), dtype=object)


class RawTextStatistics(InputStatistics):
    """`char_count` and `word_count` (split on white space); stored as the UTF-8 text."""

    def __init__(self) -> None:
        self.names = ["char_count", "word_count"]

    def compute(self, rows: Sequence[Any]) -> np.ndarray:
        texts = [str(r) for r in rows]
        return np.array([[len(t), len(t.split())] for t in texts], dtype=np.float64)

    def compact(self, rows: Sequence[Any]) -> list[bytes]:
        return [str(r).encode("utf-8") for r in rows]
