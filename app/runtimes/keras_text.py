"""Keras models that take raw strings (a `TextVectorization` layer on a string input), on any
backend.

TensorFlow runs the whole model, strings included. JAX and PyTorch have no string tensors,
so there the model is cut after its `TextVectorization` layer: that layer tokenises the
strings through `tf.data` (Keras runs its preprocessing layers there on every backend, with
TensorFlow's ops), and the rest of the network, which takes token ids, is compiled for the
backend like any other model. Both halves are the same layers with the same weights, so the
outputs are the model's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.runtimes.base import UnservableArtifact

Tokenize = Callable[[np.ndarray], np.ndarray]


def string_backend_problem(backend: str, why: str) -> str:
    """Why a Keras model taking raw strings cannot run on `backend`, and what to change."""
    return (
        f"the model takes raw strings; on the {backend} backend (no string tensors) {why}: "
        "set KERAS_BACKEND=tensorflow, or install TensorFlow (tensorflow-cpu, the `train` "
        "extra) for a model whose first layer after its input is a TextVectorization layer"
    )


def split_text_model(model: Any, backend: str) -> tuple[Tokenize | None, Any]:
    """(tokenize, network) for a Keras `model` whose input is a string tensor: on tensorflow
    (None, `model`), strings go through the graph; elsewhere `tokenize` maps an (N, 1) or (N,)
    object array of texts to the (N, L) token ids that `network` (the layers after the
    TextVectorization layer) takes. Raises UnservableArtifact naming the backend when the
    model cannot be cut so (no TextVectorization layer right on its input) or TensorFlow is
    not installed."""
    if backend == "tensorflow":
        return None, model
    source = model.inputs[0]
    first = [layer for layer in model.layers if _reads(layer, source)]
    if len(first) != 1 or type(first[0]).__name__ != "TextVectorization":
        raise UnservableArtifact(
            string_backend_problem(
                backend, "the server needs a TextVectorization layer right on the input"
            )
        )
    try:
        import tensorflow as tf
    except ImportError:
        raise UnservableArtifact(
            string_backend_problem(backend, "tokenising needs TensorFlow, not installed here")
        ) from None
    import keras

    vectorize = first[0]
    network = keras.Model(vectorize.output, model.outputs)

    def tokenize(texts: np.ndarray) -> np.ndarray:
        batch = tf.data.Dataset.from_tensor_slices(texts).batch(max(1, len(texts)))
        return np.asarray(next(iter(batch.map(vectorize))).numpy())

    return tokenize, network


def _reads(layer: Any, tensor: Any) -> bool:
    """Whether `layer` takes `tensor` (the model's input) as its input."""
    if type(layer).__name__ == "InputLayer":
        return False
    try:
        return layer.input is tensor
    except (AttributeError, ValueError):  # a layer called more than once, or never
        return False
