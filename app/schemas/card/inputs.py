"""The card's input section: one model per input kind (tabular, table, image, text, raw text),
told apart by `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.schemas.card.common import ArtifactName, _Strict
from app.schemas.card.evaluation import OutOfDomainChecks

FeatureType = Literal["number", "string", "boolean"]


class _InputSpec(_Strict):
    """What every input section of a card answers for the card's own checks (the rest of
    what an input kind means lives in `app.kinds`)."""

    def artifact_files(self) -> dict[str, str]:
        """The files beside the card this input needs, by field name (each must be listed
        in the card's artifacts)."""
        return {}

    def check_out_of_domain(self, checks: OutOfDomainChecks) -> None:
        """Raise ValueError where the card's out_of_domain section does not fit this input."""


class Feature(_Strict):
    """One named input feature of a tabular model.

    `dtype` says what a client sends for it: a number, a category (a string; `categories`
    lists those seen in the example data, for docs and drift) or a boolean. `missing`: the
    model accepts a missing value (JSON null) for it (an imputer in its pipeline).
    """

    name: str
    unit: str | None = None
    description: str | None = None
    dtype: FeatureType = "number"
    categories: list[str] | None = Field(
        default=None, description="String features: the categories seen in the example data."
    )
    missing: bool = Field(
        default=False, description="Whether the model accepts a missing value (null)."
    )


class TabularInput(_InputSpec):
    """Rows of numbers; the service accepts named features or a plain list in this order."""

    kind: Literal["tabular"] = "tabular"
    features: list[Feature] = Field(min_length=1)

    @property
    def n_features(self) -> int:
        """Number of features one instance must have."""
        return len(self.features)

    def check_out_of_domain(self, checks: OutOfDomainChecks) -> None:
        count = self.n_features
        if len(checks.feature_low or ()) != count or len(checks.feature_high or ()) != count:
            raise ValueError(f"out_of_domain feature ranges must have {count} entries")

    @property
    def mixed(self) -> bool:
        """Whether any feature is not a plain number (a string, a boolean, or may be missing):
        such rows go to the model as a table of Python objects, not a float32 matrix."""
        return any(f.dtype != "number" or f.missing for f in self.features)


class TableInput(_InputSpec):
    """A named table: each instance an object of named features of mixed types (numbers,
    category strings, booleans, missing values where the model takes them), given to the
    model as a one-row-per-instance DataFrame with the card's column names and types (a
    scikit-learn ColumnTransformer pipeline fitted on a DataFrame)."""

    kind: Literal["table"] = "table"
    features: list[Feature] = Field(min_length=1)

    @property
    def n_features(self) -> int:
        """Number of features one instance must have."""
        return len(self.features)


class ImageInput(_InputSpec):
    """Grey-level images, white ink on black, values 0-255 (the MNIST convention)."""

    kind: Literal["image"] = "image"
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    channels: Literal[1] = 1
    max_value: float = 255.0
    description: str | None = None


class RawImageInput(_InputSpec):
    """Images handed to the model as they are, pixel values in the model's own scale (a user's
    Keras image model: grey or colour, any size). Nothing digit-specific is done to them: no
    inversion, cropping, rescaling or centring (the built-in `image` kind's MNIST reading).

    One instance is `height` x `width` x `channels` values (`height` x `width` for one channel
    when `channel_axis` is false: the model's input is (None, H, W)). `value_low`/`value_high`:
    the range the model takes, inferred from the import example (0-1, 0-255 or -1-1; None when
    the example fitted none of them); values outside it are refused, and an uploaded PNG/JPEG
    (0-255 per channel) is mapped linearly onto it.
    """

    kind: Literal["raw-image"] = "raw-image"
    height: int = Field(ge=1, le=4096)
    width: int = Field(ge=1, le=4096)
    channels: int = Field(ge=1, le=4, description="1 grey, 3 RGB, 4 RGBA (last axis)")
    channel_axis: bool = Field(
        default=True, description="Whether the model's input has a channel axis (H, W, C)."
    )
    dtype: Literal["float32", "float64", "float16", "uint8", "int32"] = "float32"
    value_low: float | None = None
    value_high: float | None = None
    description: str | None = None

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one instance as the model takes it (no batch axis)."""
        if self.channel_axis:
            return (self.height, self.width, self.channels)
        return (self.height, self.width)

    @property
    def scale_text(self) -> str:
        """The value range in words, e.g. "0-1"."""
        if self.value_low is None or self.value_high is None:
            return "any finite float32"
        return f"{self.value_low:g} to {self.value_high:g}"


class TextInput(_InputSpec):
    """Raw text, tokenised outside the model graph with the saved vocabulary."""

    kind: Literal["text"] = "text"
    vocabulary_file: ArtifactName
    sequence_length: int = Field(ge=1)
    ngram_max: int = Field(ge=1, le=2)
    lowercase: bool = True
    language: str | None = Field(
        default=None, description="The language of the training texts, e.g. English."
    )
    vocabulary_size: int | None = Field(
        default=None,
        ge=1,
        description="Entries in the vocabulary file (words and word pairs); a text with none "
        "of its words in it is refused.",
    )
    word_order: Literal["bag", "sequence"] = Field(
        default="bag",
        description="bag: the sorted ids of the text's distinct n-grams (the built-in "
        "models); sequence: its words' ids in order (a model imported with a vocabulary).",
    )
    description: str | None = None

    @property
    def ordered(self) -> bool:
        """Whether the model reads its words' ids in order (`word_order` sequence)."""
        return self.word_order == "sequence"

    def artifact_files(self) -> dict[str, str]:
        return {"vocabulary_file": self.vocabulary_file}


class RawTextInput(_InputSpec):
    """Raw text handed to the model as strings: the model tokenises it itself (a scikit-learn
    pipeline starting with a TfidfVectorizer, a Keras model with a TextVectorization layer)."""

    kind: Literal["raw-text"] = "raw-text"
    language: str | None = None
    description: str | None = None


InputSpec = Annotated[
    TabularInput | TableInput | ImageInput | RawImageInput | TextInput | RawTextInput,
    Field(discriminator="kind"),
]
