"""What one input kind means, in one place: the adapter of a model version.

A model version's adapter (made from its card) holds everything that depends on the kind of
input it takes (tabular, table, image, text, raw-text), for every protocol:
- the friendly API's request schema (`request_model`) and its one-line help (`instance_help`);
- the V2 input tensor it takes (`tensor_spec`), a docs example of it (`tensor_example`) and
  how tensor values become rows (`tensor_rows`);
- the rows themselves, in two steps, split on purpose:
  - `to_row` runs on the request path, once per instance: cheap conversion and the checks
    that must reject one request without touching the others (an image that does not decode);
  - `featurize` runs on the model's worker thread, once per batch: the vectorised work
    (stacking arrays, tokenising texts), off the event loop; `featurize_batch` is what the
    server calls there, and may refuse single rows (a review with no known word) with the
    client error of that row alone.
  Both call the same functions the training scripts use.
- the message for a row the model cannot compute (`uncomputable`);
- what follows from the card alone, as class methods (`app.kinds.kind_of(card)`): the
  instance schema (`instance_type`), the drift statistics of its rows (`statistics`), the
  report page's sections (`report_inputs`, `report_examples`, `report_sample`) and the
  evaluation data's rows at import (`record_rows`);
- the explainer of a loaded version (`explainer`) and the docs' words for it
  (`explanation_method`).

Adapters are made per version at discovery (cheap: the card only) and `load()`ed with the
model (files beside the card, such as a vocabulary), so two versions of one model that take
different inputs are decoded each by its own adapter, on every protocol.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model

from app.attributions.base import Explainer
from app.budget import RequestBudget
from app.codecs.v2 import NamedTensors, TensorSpec

# The warnings a kind attaches to rows live with their encoders (a leaf of app.codecs);
# re-exported here, where the kinds and their callers look for them.
from app.codecs.warnings import NO_WARNINGS as NO_WARNINGS
from app.codecs.warnings import InputWarning as InputWarning
from app.codecs.warnings import RowWarnings as RowWarnings
from app.errors import InvalidInput, ServingError
from app.kinds.report import json_sample
from app.kinds.statistics import InputStatistics
from app.runtimes.base import Model
from app.schemas.card import CardExample, ModelCard, OutOfDomainChecks
from app.schemas.predict import FLOAT32_MAX, model_title
from app.settings import ExplainSettings

# Served probabilities are the task's business; re-exported for the core's import.
from app.tasks import DEFAULT_PROBABILITY_FLOOR as DEFAULT_PROBABILITY_FLOOR
from app.tasks import bound_probabilities as bound_probabilities


@dataclass(frozen=True)
class InputLimits:
    """The server's limits on one request's inputs (from the settings)."""

    max_instances: int = 1000
    max_text_chars: int = 100_000
    max_image_pixels: int = 4_000_000


def plain_numeric_rows(
    body: bytes,
    max_instances: int,
    row_shape: tuple[int, ...],
    max_value: float | None,
    names: Sequence[str] | None = None,
) -> list[np.ndarray] | None:
    """Rows straight from a body of the plainest kind, or None for "validate it properly"
    (`plain_numeric_array`'s rows)."""
    array = plain_numeric_array(body, max_instances, row_shape, max_value, names)
    return None if array is None else list(array)


def plain_numeric_array(
    body: bytes,
    max_instances: int,
    row_shape: tuple[int, ...],
    max_value: float | None,
    names: Sequence[str] | None = None,
) -> np.ndarray | None:
    """The float32 array `(N, *row_shape)` of a body of the plainest kind, or None for
    "validate it properly".

    The plainest kind: exactly `{"instances": [...]}` holding 1 to max_instances numeric
    arrays of `row_shape`, every value a finite float32 within 0..max_value (when given), no
    JSON booleans. Such a body is valid under the request schema and gives the same rows the
    validating path gives, at half its cost (orjson and one NumPy conversion instead of a
    Python float per value: 784 of them for an image). Anything else returns None, and the
    schema then accepts it or says precisely what is wrong.

    With `names` (tabular features), an instance may also be an object holding exactly those
    keys, in any order: its values are taken in the order of `names`, as the schema's named
    form gives them.
    """
    # Integers only (grey levels): no "." or exponent, and the one "e" and the only quotes
    # are the key's. NumPy then converts without discovering the type first (16 instead of
    # 20 us for an image), and no "true"/"false" can hide in the body (each has an "e").
    integers = (
        body.count(b"e") == 1
        and body.count(b'"') == 2
        and b'"instances"' in body
        and b"." not in body
        and b"E" not in body
    )
    if not integers and (b"true" in body or b"false" in body):
        return None  # booleans are not numbers, but NumPy casts them
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:  # also NaN/Infinity tokens
        return None
    if type(parsed) is not dict or len(parsed) != 1:
        return None
    instances = parsed.get("instances")
    if type(instances) is not list or not 0 < len(instances) <= max_instances:
        return None
    if names is not None and type(instances[0]) is dict:
        count = len(names)
        try:  # exactly these keys: as many, and each of them
            instances = [
                [instance[name] for name in names] if len(instance) == count else None
                for instance in instances
            ]
        except (KeyError, TypeError):  # a missing key; a list among the objects
            return None
    try:
        array = np.array(instances, dtype=np.int64) if integers else np.array(instances)
    except (ValueError, TypeError, OverflowError):  # ragged, or ints beyond int64
        return None
    kind = array.dtype.kind
    if kind not in "iuf" or array.shape[1:] != row_shape:  # no str/None/objects
        return None
    # Checked in float64: a value just past float32's largest would round to it, not to inf.
    # (Integers, the usual grey levels, are within float32's range: no pass. Finite needs no
    # pass either: orjson refuses NaN, Infinity and numbers that overflow a double.)
    if kind == "f" and np.abs(array).max() > FLOAT32_MAX:
        return None
    array = array.astype(np.float32)
    if max_value is not None and (array.min() < 0 or array.max() > max_value):
        return None
    return array


def decode_b64(text: str, name: str = "b64") -> bytes:
    """Standard base64 -> bytes (InvalidInput naming the field, and how to encode, if not)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            f"{name} is not valid base64 (wrong characters or length); encode the file's bytes "
            "with standard base64"
        ) from exc


def image_file_bytes(element: Any) -> bytes:
    """A V2 BYTES element holding an image file: raw bytes from binary data, or in JSON a
    string holding the file as base64 (InvalidInput if it is not base64)."""
    if isinstance(element, bytes):
        return element
    return decode_b64(
        element, "the string (in JSON an image file is base64; raw bytes go as binary data)"
    )


def named_rows(
    convert: Callable[[Any], Any], values: Any, where: str = "instances[{}]"
) -> list[Any]:
    """`convert` each value into a row; an error about one names it with `where`."""
    rows = []
    for index, value in enumerate(values):
        try:
            rows.append(convert(value))
        except ServingError as exc:
            exc.message = f"{where.format(index)}: {exc.message}"
            raise
    return rows


# Decoded grid bytes (up to ~5 float32 28x28 grids, ~20 us each to read) whose rows an image
# kind makes on the event loop: less than the hand-off to a decoding thread and back costs.
INLINE_GRID_BYTES = 16 * 1024


class InputAdapter(ABC):
    """One model version's input kind: schema, V2 tensor, rows, features."""

    # Whether to_row may be slow enough (image decoding) to belong on a worker thread (see
    # `rows_off_loop`).
    slow_rows = False
    # Whether the version takes uploaded image files (`:predict-image`).
    takes_image_files = False
    # Whether a row of zeros can stand in for an example instance (an imported model given
    # none: its card's replay example).
    zeros_example = False
    # Which out-of-domain check `_warn` runs, by the name training calibrates it under
    # (`training.ood.CALIBRATIONS`); None: the kind warns about nothing, so nothing to fit.
    out_of_domain_check: ClassVar[str | None] = None

    def __init__(self, card: ModelCard, folder: Path, limits: InputLimits) -> None:
        self.card = card
        self.folder = folder
        self.limits = limits

    # ------------------------------------------------------------------ training data
    def training_rows(self, values: list[Any]) -> list[Any]:
        """Training instances (as the training scripts hold them) -> this kind's rows, without
        the refusals of the request path (a training review with no known word is still part
        of the training distribution)."""
        return values

    @classmethod
    def record_rows(cls, card: ModelCard, records: list[Any]) -> list[Any] | None:
        """Evaluation data given at import (a record of named features, or a text, each) ->
        this kind's rows for the drift profile; None where the kind takes no such data."""
        return None

    # ------------------------------------------------------------------ explanations
    # One sentence for the docs: how `:explain` explains a model of this kind.
    explanation_method: ClassVar[str]

    @abstractmethod
    def explainer(self, model: Model, settings: ExplainSettings) -> Explainer:
        """The explainer of this loaded version (`model`: its runtime), from app.explain's
        methods; raises NotExplainable (501) when this server cannot explain it."""

    # ------------------------------------------------------------------ report page
    @classmethod
    @abstractmethod
    def report_inputs(cls, card: ModelCard) -> str:
        """HTML of the report's "Input" part: what one instance of this kind is."""

    @classmethod
    @abstractmethod
    def report_examples(cls, card: ModelCard, examples: list[dict[str, Any]]) -> str:
        """HTML of held-out examples the model got wrong (each a dict of `instance`, `label`,
        `predicted` and `confidence`), for the report's "Mistakes" section."""

    @classmethod
    def report_sample(cls, card: ModelCard, example: CardExample) -> str:
        """HTML of the card's sample input, shown above its explanation."""
        return json_sample(example)

    # ------------------------------------------------------------------ monitoring
    @classmethod
    @abstractmethod
    def statistics(cls, card: ModelCard, folder: Path | None) -> InputStatistics:
        """What drift monitoring measures of this kind's rows (`folder`: the version's files,
        for kinds that need them, such as a vocabulary)."""

    def load(self) -> None:  # noqa: B027 - most kinds need nothing beyond the card
        """Read what the adapter needs beside the card (after the files were verified)."""

    # ------------------------------------------------------------------ friendly API (V1)
    @classmethod
    @abstractmethod
    def instance_type(cls, card: ModelCard, max_text_chars: int) -> Any:
        """The type of one instance of this kind, as clients send it (a pydantic type)."""

    @classmethod
    def request_model_for(
        cls, card: ModelCard, *, max_instances: int, max_text_chars: int, examples: list[Any]
    ) -> type[BaseModel]:
        """`{"instances": [...]}` for this model, with its limits and a working example."""
        instances_type: Any = list[cls.instance_type(card, max_text_chars)]  # type: ignore[misc]
        model: type[BaseModel] = create_model(
            f"{model_title(card.name)}PredictRequest",
            __config__=ConfigDict(
                extra="forbid", json_schema_extra={"examples": [{"instances": examples}]}
            ),
            instances=(
                instances_type,
                Field(
                    min_length=1,
                    max_length=max_instances,
                    description=f"1 to {max_instances} instances; one prediction comes back "
                    "for each, in the same order.",
                ),
            ),
        )
        return model

    @cached_property
    def request_model(self) -> type[BaseModel]:
        """`{"instances": [...]}` of this version, with the limits and the card's examples."""
        return self.request_model_for(
            self.card,
            max_instances=self.limits.max_instances,
            max_text_chars=self.limits.max_text_chars,
            examples=[example.instance for example in self.card.examples],
        )

    @property
    @abstractmethod
    def instance_help(self) -> str:
        """One instance, in words, for error messages and the docs."""

    def plain_rows(self, body: bytes, max_instances: int) -> list[Any] | None:
        """Rows for a plainly valid body without full validation (see plain_numeric_rows);
        None means: take the validating path."""
        return None

    def max_values(self, max_instances: int) -> int | None:
        """The most JSON values `max_instances` instances can hold (None: no such bound, as
        text, whose commas are not separators)."""
        return None

    # ------------------------------------------------------------------ V2 tensors
    @property
    @abstractmethod
    def tensor_spec(self) -> TensorSpec:
        """The one V2 input tensor this version takes."""

    @abstractmethod
    def tensor_example(self, instance: Any) -> dict[str, Any]:
        """A V2 input tensor (datatype, shape, data) holding one card example instance."""

    def example_inputs(self, instance: Any) -> list[dict[str, Any]]:
        """The V2 `inputs` of a request for one card example instance, in the form the
        metadata lists (one tensor per feature where the kind has that form)."""
        return [{"name": self.tensor_spec.name, **self.tensor_example(instance)}]

    def tensor_rows(
        self, datatype: str, values: np.ndarray, budget: RequestBudget | None
    ) -> list[Any]:
        """A decoded V2 tensor of `datatype` (checked against `tensor_spec`) -> rows."""
        where = f"input {self.tensor_spec.name}[{{}}]"
        if datatype == "BYTES":
            return self.bytes_rows(values.reshape(-1), where, budget)
        as_rows = values.astype(np.float32, copy=False) if datatype != "FP64" else values
        return named_rows(self.to_row, as_rows, where)

    def rows_off_loop(self, datatype: str, nbytes: int) -> bool:
        """Whether making the rows of a decoded V2 tensor (`datatype`, `nbytes` bytes of
        values) belongs on a decoding thread rather than the event loop. The protocols move
        any body over 64 KiB there whole; this says it for the smaller ones: only for a kind
        with `slow_rows`, and there for image files (one may decode into millions of pixels
        whatever its size) and for more grids than a thread hand-off costs to read."""
        return self.slow_rows and (datatype == "BYTES" or nbytes > INLINE_GRID_BYTES)

    def bytes_rows(
        self, elements: np.ndarray, where: str, budget: RequestBudget | None
    ) -> list[Any]:
        """BYTES tensor elements (bytes, or str from JSON) -> rows."""
        raise AssertionError(f"{type(self).__name__} takes no BYTES tensors")

    @property
    def feature_specs(self) -> tuple[TensorSpec, ...]:
        """The V2 inputs of the one-tensor-per-feature form (a table's columns, each of shape
        [N]), which a request may send instead of `tensor_spec`, and which the metadata lists;
        empty: the kind takes only `tensor_spec`."""
        return ()

    def feature_rows(self, tensors: NamedTensors, budget: RequestBudget | None) -> list[Any]:
        """Decoded feature tensors (checked against `feature_specs`: name -> (datatype,
        values [N]), in the specs' order) -> N rows (raises InvalidInput naming the input)."""
        raise AssertionError(f"{type(self).__name__} takes no feature tensors")

    # ------------------------------------------------------------------ rows and features
    @abstractmethod
    def to_row(self, instance: Any, budget: RequestBudget | None = None) -> Any:
        """One validated instance -> one row (raises InvalidInput / PayloadTooLarge). Work
        that is costly (decoding an image) is charged to the request's budget."""

    def image_to_row(self, data: bytes, budget: RequestBudget | None = None) -> Any:
        """An uploaded image file -> one row (only where `takes_image_files`)."""
        raise AssertionError(f"{type(self).__name__} takes no image files")

    def check_rows(self, examples: list[Any], count: int, seed: int) -> list[Any] | None:
        """`examples` (the card's, as rows) and more rows like a client's, about `count` in
        all, generated (seeded: the same each load) to check that another engine computes
        what the model's framework computes (`Model.accelerate`); None where this kind cannot
        generate them (the default)."""
        return None

    def rows_from(self, rows: list[Any]) -> list[Any]:
        """Rows that another version of the model (its own adapter) made, as this version's
        featurize takes them: a shadow version predicts copies of the primary's rows. Numeric
        rows of the same input spec are taken as they are."""
        return rows

    @abstractmethod
    def featurize(self, rows: list[Any]) -> np.ndarray:
        """Rows -> the array the model's forward pass takes."""

    def featurize_batch(self, rows: list[Any]) -> tuple[np.ndarray, dict[int, ServingError]]:
        """On the model's worker, once per batch: (`featurize(rows)`, the client errors of
        rows refused here, by index). A refused row is still featurised (the batch keeps its
        shape) but its prediction is replaced by its error: only its own request fails, with
        the message it would have had from `to_row`. Checks that need the batch's work (a
        text's tokens) belong here rather than in `to_row`, on the event loop, per request.
        A kind may replace rows of `rows` (the batch's own list) by what it learnt of them
        here, for the batch's `warnings` to read (a text's word counts)."""
        return self.featurize(rows), {}

    def warnings(
        self, rows: list[Any], features: np.ndarray, embedded: np.ndarray | None = None
    ) -> list[RowWarnings] | None:
        """Per row, what to tell the client about its input (unlike the training data), from
        the rows, the batch `featurize` made of them and the network's penultimate-layer
        features (`embedded`, where the runtime gives them); None when no row has anything
        to say.

        Runs on the model's worker thread, once per batch, with the thresholds of the card's
        `out_of_domain` section (no section: no warnings). Kinds override `_warn`."""
        checks = self.card.out_of_domain
        if checks is None:
            return None
        return self._warn(checks, rows, features, embedded)

    def _warn(
        self,
        checks: OutOfDomainChecks,
        rows: list[Any],
        features: np.ndarray,
        embedded: np.ndarray | None,
    ) -> list[RowWarnings] | None:
        return None

    def uncomputable(self, row: Any) -> InvalidInput:
        """The client error for a row the model gave no finite output for (its float32
        arithmetic overflowed): the input is outside what the model can compute, a 422."""
        return InvalidInput(
            "the model cannot compute a prediction for this instance (its arithmetic "
            "overflowed); send values in the range the model was trained on"
        )
