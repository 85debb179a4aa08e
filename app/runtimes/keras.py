"""Keras 3 runtime: a compiled forward pass with a dynamic batch dimension, on any backend.

`model.predict` per request costs tens of milliseconds (it builds a data pipeline and
callbacks every call); a traced/jitted `model(x, training=False)` costs about a millisecond.
Batches are padded up to a few bucket sizes so a backend that specialises on shapes (XLA, JAX)
compiles each bucket once, at warm-up, never while serving.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.runtimes.base import Gradient, Model, Runtime
from app.runtimes.keras_gradients import make_gradient
from app.runtimes.keras_text import Tokenize, split_text_model
from app.schemas.card import ModelCard

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray], Any]

# JAX's XLA runs these small models several times faster than TensorFlow on CPU (per call
# overhead ~30 us against ~500 us for a compiled tf.function; see bench/RESULTS.md) and the
# .keras files are backend-agnostic, so the server uses JAX unless KERAS_BACKEND says otherwise.
DEFAULT_BACKEND = "jax"


def batch_buckets(max_batch_size: int) -> list[int]:
    """Powers of two up to `max_batch_size`, plus `max_batch_size` itself."""
    buckets = [1]
    while buckets[-1] * 2 < max_batch_size:
        buckets.append(buckets[-1] * 2)
    if buckets[-1] != max_batch_size:
        buckets.append(max_batch_size)
    return buckets


def configure_backend(inference_threads: int) -> str:
    """Set up the Keras backend once per process, before any model loads; return its name.

    The backend is KERAS_BACKEND if set, else JAX (if Keras was already imported, e.g. by
    training code in the same process, its backend stays). GPU memory: TensorFlow grows it
    instead of grabbing it all; JAX does not preallocate. TensorFlow's CPU thread pools are
    sized from `inference_threads` (these calls fail once TensorFlow has initialised, which is
    harmless: the first settings stay).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    backend = str(keras.backend.backend())
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
            tf.config.threading.set_intra_op_parallelism_threads(inference_threads)
            # One model call at a time per model; a second pool thread lets two models overlap.
            tf.config.threading.set_inter_op_parallelism_threads(2)
        except RuntimeError as exc:
            log.debug("TensorFlow already initialised, keeping its settings: %s", exc)
    return backend


def describe_device(backend: str) -> str:
    """The device the backend places computations on, for the card endpoint and logs."""
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(
                tf.config.list_physical_devices("GPU")[0]
            )
            return f"gpu:0 ({details.get('device_name', 'GPU')}, tensorflow)"
        return "cpu (tensorflow)"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{device.id} ({device.device_kind}, jax)"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda:0 ({torch.cuda.get_device_name(0)}, torch)"
        return "cpu (torch)"
    return f"cpu ({backend})"


def _with_embedding(model: Any) -> Any:
    """The same network with two outputs: the input of its last layer (the penultimate
    features) and its output. One forward pass computes both."""
    import keras

    last = model.layers[-1]
    return keras.Model(inputs=model.inputs, outputs=[last.input, model.outputs[0]])


def _numpy(outputs: Any) -> Any:
    """A backend tensor (or a list of them: the embedding and the output) as NumPy."""
    if isinstance(outputs, list | tuple):
        return tuple(_numpy(output) for output in outputs)
    if type(outputs).__module__.startswith("torch"):
        return outputs.detach().cpu().numpy()
    return np.asarray(outputs)  # JAX arrays and TensorFlow eager tensors convert as they are


def _compile_forward(model: Any, backend: str) -> Forward:
    """A forward pass that accepts any batch size without retracing."""
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        traced = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return lambda batch: _numpy(traced(batch))
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def jitted(x: Any) -> Any:
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return outputs

        # JAX dispatches asynchronously: the outputs are JAX arrays still being computed,
        # turned into NumPy (which waits for them) by the caller when it needs them.
        return jitted
    if backend == "torch":
        import torch

        def torch_forward(batch: np.ndarray) -> Any:
            with torch.inference_mode():
                return _numpy(model(batch, training=False))

        return torch_forward
    return lambda batch: _numpy(model(batch, training=False))


class KerasModel(Model):
    """A `.keras` file served through a compiled forward function and padded batch buckets."""

    def __init__(self, *args: Any, buckets: Sequence[int] = (1,), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buckets = sorted(set(buckets))
        self._backend = ""
        self._forward: Forward | None = None
        self._input_dtype: Any = np.float32
        # A model taking raw strings (a TextVectorization layer): its one-instance shape, and
        # on a backend without string tensors the tokeniser run before the network.
        self._string_shape: tuple[int, ...] | None = None
        self._tokenize: Tokenize | None = None
        self._embeds = False
        # The loaded Keras model, for explanations (gradients, layers); None until load().
        self.network: Any = None

    @property
    def backend(self) -> str:
        """The Keras backend the model was loaded on ("" before load())."""
        return self._backend

    @property
    def device(self) -> str:
        return describe_device(self._backend) if self._backend else "not loaded"

    def load(self) -> None:
        import keras

        self._backend = str(keras.backend.backend())
        model = keras.saving.load_model(
            self.folder / self.card.model_file, compile=False, safe_mode=True
        )
        dtype = str(model.inputs[0].dtype)
        if dtype == "string":
            self._input_dtype = object
            self._string_shape = tuple(int(d or 1) for d in model.inputs[0].shape[1:])
            self._tokenize, model = split_text_model(model, self._backend)
        else:
            self._input_dtype = np.dtype(dtype)
        checks = self.card.out_of_domain
        # Only a card with an embedding-based out-of-domain score pays for the second output.
        self._embeds = checks is not None and checks.embedding_statistics_file is not None
        self._forward = _compile_forward(
            _with_embedding(model) if self._embeds else model, self._backend
        )
        self.network = model

    def input_mean(self) -> np.ndarray | None:
        """The mean of the first Normalization layer (adapted on the training data), flat."""
        for layer in getattr(self.network, "layers", []):
            if (
                layer.__class__.__name__ == "Normalization"
                and getattr(layer, "mean", None) is not None
            ):
                return np.asarray(layer.mean, dtype=np.float64).reshape(-1)
        return None

    def input_gradient(self) -> Gradient:
        """Compiled on the backend the model was loaded on (jax or tensorflow); raises
        NoInputGradients on another backend."""
        assert self.network is not None, "load() first"
        return make_gradient(self.network, self._backend)

    def _bucket_for(self, rows: int) -> int:
        for size in self.buckets:
            if size >= rows:
                return size
        return self.buckets[-1]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predict_embedded(batch)[0]

    @property
    def computes_asynchronously(self) -> bool:
        return self._backend == "jax"  # JAX dispatches; TensorFlow and PyTorch compute here

    def predict_embedded(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.start_embedded(batch)()

    def start_embedded(
        self, batch: np.ndarray
    ) -> Callable[[], tuple[np.ndarray, np.ndarray | None]]:
        assert self._forward is not None, "load() first"
        batch = np.asarray(batch, dtype=self._input_dtype)
        if self._string_shape is not None:  # texts (N,) as the model's (N, 1)
            batch = batch.reshape(len(batch), *self._string_shape)
            if self._tokenize is not None:
                batch = self._tokenize(batch)
        largest = self.buckets[-1]
        dispatched: list[tuple[Any, int]] = []
        for start in range(0, len(batch), largest):
            chunk = batch[start : start + largest]
            rows = len(chunk)
            size = self._bucket_for(rows)
            if size > rows:
                # Pad with copies of a real row: padding must be a valid input (an all-zero
                # text row would average over nothing) and is dropped right after.
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - rows, axis=0)])
            dispatched.append((self._forward(chunk), rows))
        return lambda: self._collect(dispatched)

    def _collect(self, dispatched: list[tuple[Any, int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """The outputs of the dispatched chunks as NumPy (waiting for them), each chunk cut
        back to its real rows (the padding dropped) before joining."""
        values_parts: list[np.ndarray] = []
        embedded_parts: list[np.ndarray] = []
        for output, rows in dispatched:
            if self._embeds:
                embedded_part, values_part = _numpy(output)
                values_parts.append(values_part[:rows])
                embedded_parts.append(embedded_part[:rows])
            else:
                values_parts.append(_numpy(output)[:rows])
        values = np.concatenate(values_parts).astype(np.float64)
        # The task's outputs: a sigmoid classifier's (N, 1) becomes (N, 2).
        values = self.task.model_outputs(values)
        if not self._embeds:
            return values, None
        return values, np.concatenate(embedded_parts).astype(np.float64)

    def warmup(self, batch: np.ndarray) -> None:
        """Call every bucket once (each may compile on first use)."""
        row = np.asarray(batch[:1], dtype=self._input_dtype)
        for size in self.buckets:
            self.predict(np.repeat(row, size, axis=0))


class KerasRuntime(Runtime):
    """`.keras` files (card framework "keras"), on the backend chosen at `prepare`."""

    framework = "keras"
    library = "keras"

    def __init__(self) -> None:
        super().__init__()
        self.backend = ""  # the Keras backend `prepare` chose ("" before)

    def setup(self, inference_threads: int) -> None:
        self.backend = configure_backend(inference_threads)

    def create(
        self, card: ModelCard, folder: Path, *, max_batch_size: int, buckets: Sequence[int] | None
    ) -> Model:
        return KerasModel(card, folder, buckets=buckets or batch_buckets(max_batch_size))

    def owns(self, model: Model) -> bool:
        return isinstance(model, KerasModel)

    def clear_caches(self) -> bool:
        """JAX keeps every function it compiled in process-wide caches that outlive the model
        (each unload and load of a text model left ~15 MB behind, bench/reload_memory.py):
        cleared, and the models still serving must compile again."""
        if self.backend != "jax":
            return False
        import jax

        jax.clear_caches()  # type: ignore[no-untyped-call]
        return True
