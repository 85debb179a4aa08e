"""Response schema of `:explain` (the request body is `:predict`'s, per model)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Completeness(BaseModel):
    """How exactly the attributions add up to f(x) - f(baseline) for the explained class."""

    sum_of_attributions: float
    prediction_minus_baseline: float = Field(
        description="f(x) - f(baseline): the explained class's probability for the instance "
        "minus that for the baseline."
    )
    error: float = Field(description="|sum_of_attributions - prediction_minus_baseline|")
    tolerance: float = Field(
        description="The bound the method guarantees or refines to: 2% of "
        "|prediction_minus_baseline|, or 0.01 when that is larger."
    )


class Baseline(BaseModel):
    """The reference input the attributions are measured from."""

    kind: str = Field(description="What the baseline is (e.g. the training mean).")
    features: dict[str, float] | None = Field(
        default=None, description="Tabular: the baseline's value of every feature."
    )
    probabilities: dict[str, float] | None = Field(
        default=None, description="Tabular: the model's probabilities for the baseline."
    )
    probability: float | None = Field(
        default=None, description="Image, text: the explained class's probability for it."
    )


class Neighbor(BaseModel):
    """One of the k nearest training examples (a KNN model)."""

    rank: int
    training_index: int = Field(description="Row of the model's training data.")
    label: str
    distance: float = Field(description="In the model's feature space and metric.")
    features: dict[str, float] | None = Field(
        default=None, description="The training example, in the input's units."
    )


class Neighbors(BaseModel):
    """The k nearest training examples the KNN voted with."""

    k: int
    metric: str
    weights: str
    source: str = Field(description="Where the KNN sits inside the artifact.")
    neighbors: list[Neighbor]


class Token(BaseModel):
    """One word or word pair as the text model looked it up."""

    token: str = Field(description='The n-gram, or "[UNK]" for every unknown word.')
    attribution: float
    unknown: bool = Field(description="True for [UNK], which stands for out-of-vocabulary words.")
    stands_for: list[str] | None = Field(
        default=None, description="[UNK] only: the unknown words of the text."
    )


class Word(BaseModel):
    """One word of the text, in reading order, with the attributions folded into it."""

    word: str = Field(description="The word as the model's tokeniser wrote it (lower case).")
    attribution: float = Field(
        description="Its own attribution plus half of each word pair it is in; a word or pair "
        "that occurs several times shares its attribution equally among its occurrences, so "
        "the words' attributions add up to the tokens'."
    )
    unknown: bool = Field(description="Not in the vocabulary (the model saw [UNK]).")


class Explanation(BaseModel):
    """One instance: its prediction, as `:predict` gives it, and why."""

    label: str = Field(description="The most probable class.")
    probabilities: dict[str, float]
    explained_label: str = Field(description="The class whose probability is attributed.")
    method: dict[str, Any] = Field(description="The attribution method and its parameters.")
    baseline: Baseline
    completeness: Completeness
    attributions: dict[str, float] | None = Field(
        default=None, description="Tabular: one attribution per named feature."
    )
    neighbors: Neighbors | None = Field(default=None, description="KNN models only.")
    attribution_map: list[list[float]] | None = Field(
        default=None, description="Image: one attribution per pixel of the featurised input."
    )
    overlay_png: str | None = Field(
        default=None,
        description="Image: base64 PNG of the map over the digit (red for, blue against).",
    )
    tokens: list[Token] | None = Field(
        default=None, description="Text: the n-grams the model saw, in order of appearance."
    )
    unknown_words: list[str] | None = Field(
        default=None, description="Text: the words outside the vocabulary."
    )
    words: list[Word] | None = Field(
        default=None,
        description="Text: the review word by word, each with its share of the attributions "
        "(word pairs folded into the two words they cover); reads as the review.",
    )


class ExplainResponse(BaseModel):
    """Explanations in the order of the request's instances."""

    model: str
    version: int
    explanations: list[Explanation]
