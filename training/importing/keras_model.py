"""Importing a Keras model: schema from its input shape and output layer, a `.keras` copy
checked like any file the user brings, the same end-to-end check as scikit-learn models.

Taken: one input of shape (None, F) (tabular: features named by the example's columns, else
x0..) or (None, H, W, C) / (None, H, W) (an image, `raw-image`: size and channels from the
shape, the value scale 0-1, 0-255 or -1-1 from the example's values), a classifier (softmax
or sigmoid output; labels from --labels, else "0".."C-1") or a regressor (any other output
activation; one target per unit). A model whose input is a string tensor (None,) or
(None, 1) (a TextVectorization layer inside it) takes raw text (`raw-text`); on a backend
without string tensors (jax, torch) its TextVectorization layer tokenises through TensorFlow
(`app.runtimes.keras_text`). A model taking token ids (None, L), imported with a saved
vocabulary (`--vocabulary`), takes raw text too (`text`: the server's tokeniser, its words'
ids in order; `training.importing.vocabulary`).
"""

from __future__ import annotations

import json
import platform
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.preprocessing.text import TextVectorizer
from app.runtimes import UnservableArtifact, split_text_model
from app.schemas.card import (
    Feature,
    ModelCard,
    RawImageInput,
    RawTextInput,
    TabularInput,
    TextInput,
)
from app.tasks import CLASSIFICATION, REGRESSION, task_of
from training.importing.data import TEXT_COLUMN, Dataset
from training.importing.errors import ImportRefused
from training.importing.importer import Importer, Prepared, installed
from training.importing.safety import LoadedModel, check_keras_config, read_h5, read_keras
from training.importing.schema import Schema
from training.importing.vocabulary import VOCABULARY_FILE

MODEL_FILE = "model.keras"
CLASSIFIER_ACTIVATIONS = ("softmax", "sigmoid")
# The value scales an image model is taken to expect, tried in order against its example.
IMAGE_SCALES = ((0.0, 1.0), (0.0, 255.0), (-1.0, 1.0))
IMAGE_DTYPES = ("float32", "float64", "float16", "uint8", "int32")


def is_keras_model(model: Any) -> bool:
    """Whether `model` is a Keras model object."""
    return any(
        c.__module__.startswith("keras") and c.__name__ == "Model" for c in type(model).__mro__
    )


def value_range(example: np.ndarray | None) -> tuple[float | None, float | None, str]:
    """The scale an image model takes, from its example's values: 0-1, 0-255 or -1-1 (the
    first that holds them all), else unknown; with a note for the card."""
    if example is None or example.size == 0:
        return None, None, "value range unknown (no example given)"
    low, high = float(np.min(example)), float(np.max(example))
    for lower, upper in IMAGE_SCALES:
        if low >= lower and high <= upper:
            return (
                lower,
                upper,
                f"value range {lower:g} to {upper:g} from the example (min {low:g}, max {high:g})",
            )
    return None, None, f"value range unknown (the example spans {low:g} to {high:g})"


def _one_input_one_output(model: Any) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ImportRefused("only Keras models with one input and one output are imported")


@dataclass
class KerasInput:
    """What a Keras model's input shape says: the card's input section, notes for the card,
    how the user's data becomes rows, and the replay example without one (None: required)."""

    spec: TabularInput | RawImageInput | RawTextInput | TextInput
    notes: list[str]
    rows: Callable[[Any], Dataset]
    default: tuple[Any, str] | None


def _input_spec(model: Any, columns: list[str] | None, example: Any) -> KerasInput:
    """The input of a Keras model, from its input shape (and the example's columns or
    values)."""
    shape = tuple(model.inputs[0].shape)
    if str(model.inputs[0].dtype) == "string":
        if shape not in ((None,), (None, 1)):
            raise ImportRefused(
                f"the Keras model takes strings of shape {shape}; one text per instance, "
                "(None,) or (None, 1), is imported"
            )
        return KerasInput(
            RawTextInput(),
            ["raw text in: the model's input is a string tensor"],
            _text_dataset,
            None,
        )
    if len(shape) in (3, 4) and all(d is not None for d in shape[1:]):
        height, width = int(shape[1]), int(shape[2])
        channels = int(shape[3]) if len(shape) == 4 else 1
        if not 1 <= channels <= 4:
            raise ImportRefused(
                f"the Keras model takes inputs of shape {shape}; image models take 1 to 4 "
                "channels last (None, H, W, C)"
            )
        dtype = str(model.inputs[0].dtype)
        if dtype not in IMAGE_DTYPES:
            raise ImportRefused(f"the Keras image model takes {dtype} inputs; not served")
        values = None if example is None else np.asarray(example, dtype=np.float64)
        low, high, note = value_range(values)
        spec = RawImageInput(
            height=height,
            width=width,
            channels=channels,
            channel_axis=len(shape) == 4,
            dtype=dtype,
            value_low=low,
            value_high=high,
        )
        black = np.full((1, *spec.row_shape), low or 0.0)
        return KerasInput(
            spec,
            [f"image {height}x{width}x{channels} from the input shape {shape}", note],
            lambda data: _image_dataset(data, spec),
            (black, "no example given: the replay example is a black image"),
        )
    if len(shape) != 2 or shape[1] is None:
        raise ImportRefused(
            f"the Keras model takes inputs of shape {shape}; imported are tabular inputs "
            "(None, F), images (None, H, W, C) or (None, H, W), and raw strings (None,) or "
            "(None, 1) into a TextVectorization layer"
        )
    width = int(shape[1])
    names = (
        columns
        if columns is not None and len(columns) == width
        else [f"x{i}" for i in range(width)]
    )
    return KerasInput(
        TabularInput(features=[Feature(name=n) for n in names]),
        [f"{width} features from the input shape"],
        lambda data: _keras_dataset(data, names),
        (np.zeros((1, width)), "no example given: the replay example is a row of zeros"),
    )


def _token_ids_input(model: Any, vocabulary: list[str]) -> KerasInput:
    """A model taking token ids (None, L) with a saved vocabulary: the server's `text` kind,
    its words' ids in order (`training.importing.vocabulary`)."""
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 2 or shape[1] is None or str(model.inputs[0].dtype) == "string":
        raise ImportRefused(
            f"--vocabulary is for a Keras model taking token ids of a fixed length (None, L); "
            f"this one takes {model.inputs[0].dtype!s} of shape {shape}"
        )
    spec = TextInput(
        vocabulary_file=VOCABULARY_FILE,
        sequence_length=int(shape[1]),
        ngram_max=1,
        vocabulary_size=len(vocabulary),
        word_order="sequence",
    )
    vectorizer = TextVectorizer(vocabulary, spec.sequence_length, ordered=True)
    return KerasInput(
        spec,
        [
            f"text in: token ids of length {spec.sequence_length} from the input shape, "
            f"{len(vocabulary)} tokens from the saved vocabulary, words in order"
        ],
        lambda data: _token_dataset(data, vectorizer),
        None,
    )


def keras_schema(
    model: Any,
    task: str,
    labels: list[str] | None,
    columns: list[str] | None,
    example: Any = None,
) -> Schema:
    """Task, labels and input of a Keras model (see the module docstring)."""
    _one_input_one_output(model)
    return _task_schema(model, task, labels, _input_spec(model, columns, example))


def _task_schema(model: Any, task: str, labels: list[str] | None, given: KerasInput) -> Schema:
    spec, input_notes = given.spec, given.notes
    units = int(model.outputs[0].shape[-1])
    activation = str(model.layers[-1].get_config().get("activation", "linear"))
    found = CLASSIFICATION if activation in CLASSIFIER_ACTIVATIONS else REGRESSION
    if task != "auto" and task != found.kind:
        raise ImportRefused(
            f"--task {task} contradicts the Keras model's {activation} output ({found.kind})"
        )
    notes = [f"task {found.kind} from the output activation {activation!r}", *input_notes]
    if found.probabilities:
        count = 2 if units == 1 else units  # a sigmoid's one unit: two classes
        names_given = labels or [str(i) for i in range(count)]
        if len(names_given) != count:
            raise ImportRefused(
                f"--labels names {len(names_given)} labels but the model has {count} classes"
            )
        return Schema(found.card_task(count), names_given, spec, notes)
    targets = labels or (["target"] if units == 1 else [f"target_{i}" for i in range(units)])
    if len(targets) != units:
        raise ImportRefused(f"--labels names {len(targets)} targets but the model predicts {units}")
    return Schema(found.card_task(units), targets, spec, notes)


def keras_backend() -> str:
    """The Keras backend of this process."""
    import keras

    return str(keras.backend.backend())


def save_keras_copy(model: Any, folder: Path) -> str:
    """Save an inference copy as `.keras` into `folder` and check its config like a file the
    user brought; returns the file name."""
    import keras

    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    path = folder / MODEL_FILE
    inference.save(path)
    with zipfile.ZipFile(path) as archive:
        check_keras_config(json.loads(archive.read("config.json")))
    return MODEL_FILE


def keras_direct(model: Any, card: Any, x: Any) -> np.ndarray:
    """The model's own outputs in-process, as the server reports them."""
    if str(model.inputs[0].dtype) == "string":
        shape = [len(x), *(int(d or 1) for d in model.inputs[0].shape[1:])]
        texts = np.asarray(x, dtype=object).reshape(shape)
        try:
            tokenize, network = split_text_model(model, keras_backend())
        except UnservableArtifact as exc:
            raise ImportRefused(str(exc)) from None
        if tokenize is None:  # tensorflow: Keras's predict() takes no NumPy strings
            import tensorflow as tf

            outputs = network(tf.constant(texts), training=False)
        else:
            outputs = network(tokenize(texts), training=False)
        return task_of(card).model_outputs(np.asarray(outputs, dtype=np.float64))
    values = np.asarray(model.predict(np.asarray(x, dtype=np.float32), verbose=0), dtype=np.float64)
    return task_of(card).model_outputs(values)


def _text_dataset(data: Any) -> Dataset:
    if hasattr(data, "columns"):
        if TEXT_COLUMN not in data.columns:
            raise ImportRefused(f"a text model's data needs a column named {TEXT_COLUMN!r}")
        data = data[TEXT_COLUMN]
    texts = [str(t) for t in np.asarray(data, dtype=object).reshape(-1).tolist()]
    return Dataset(np.array(texts, dtype=object), texts, None)


def _token_dataset(data: Any, vectorizer: TextVectorizer) -> Dataset:
    texts = _text_dataset(data).instances
    return Dataset(vectorizer.transform(texts), texts, None)


def _image_dataset(data: Any, spec: RawImageInput) -> Dataset:
    array = np.asarray(data)
    shape = spec.row_shape
    if spec.channels == 1 and spec.channel_axis and array.shape[1:] == shape[:2]:
        array = array[..., np.newaxis]  # grey images given as (N, H, W)
    if array.shape[1:] != shape:
        want = ", ".join(map(str, shape))
        raise ImportRefused(f"the image data must have shape (N, {want}), got {array.shape}")
    if array.dtype.kind not in "iuf":
        raise ImportRefused(f"the image data must be numbers, got {array.dtype}")
    return Dataset(array.astype(np.float32), array.tolist(), None)


def _keras_dataset(data: Any, names: list[str]) -> Dataset:
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ImportRefused(f"the data must have {len(names)} columns, got shape {array.shape}")
    instances = [dict(zip(names, map(float, row), strict=True)) for row in array.tolist()]
    return Dataset(array.astype(np.float32), instances, None)


class KerasImporter(Importer):
    """Keras models (see the module docstring): a `.keras` copy, loaded in safe mode."""

    framework = "keras"
    serialization = "keras"
    suffixes = (".keras", ".h5")
    libraries = ("keras", "numpy")

    def claims(self, model: Any) -> bool:
        return is_keras_model(model)

    def read(self, path: Path, trust: bool) -> LoadedModel:
        if path.suffix.lower() == ".h5":
            return read_h5(path, trust)
        return read_keras(path, trust)

    def prepare(
        self,
        model: Any,
        example: Any,
        evaluation: tuple[Any, Any] | None,
        task: str,
        labels: list[str] | None,
        vocabulary: list[str] | None = None,
    ) -> Prepared:
        columns = [str(c) for c in example.columns] if hasattr(example, "columns") else None
        _one_input_one_output(model)
        if vocabulary is not None:
            given = _token_ids_input(model, vocabulary)
        else:
            given = _input_spec(model, columns, example)
        schema = _task_schema(model, task, labels, given)
        if vocabulary is not None:
            schema.files[VOCABULARY_FILE] = "".join(token + "\n" for token in vocabulary)
        if example is None:
            if given.default is None:
                raise ImportRefused("this model needs an example (--example): a text column")
            example, note = given.default
            schema.notes.append(note)
        held_out = given.rows(evaluation[0]) if evaluation is not None else None
        return Prepared(schema, given.rows(example), held_out)

    def save(self, model: Any, folder: Path) -> str:
        return save_keras_copy(model, folder)

    def direct(self, model: Any, card: ModelCard, model_input: Any) -> np.ndarray:
        return keras_direct(model, card, model_input)

    def backend(self) -> str | None:
        return keras_backend()

    def versions(self) -> dict[str, str]:
        # The backend first, as the trainers record it.
        return {
            "python": platform.python_version(),
            "keras_backend": str(self.backend()),
            **installed(self.libraries),
        }
