"""Gradients of one output of a Keras 3 model with respect to its input, on any backend.

Keras 3 has no backend-neutral gradient call, and the explanation libraries that compute
gradients (Captum, tf-explain, alibi, shap's DeepExplainer/GradientExplainer) are tied to
PyTorch or TensorFlow; so this is the one backend-specific piece: JAX (`jax.value_and_grad`
over `stateless_call`) and TensorFlow (`GradientTape`). Both are compiled once for a fixed
chunk shape, so a request never retraces.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.runtimes.base import Gradient, NoInputGradients


def make_gradient(network: Any, backend: str) -> Gradient:
    """The gradient function of `network` on `backend` ("jax" or "tensorflow"); raises
    NoInputGradients on another backend."""
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in network.trainable_variables]
        non_trainable = [v.value for v in network.non_trainable_variables]

        def selected(x: Any, weights: Any) -> tuple[Any, Any]:
            outputs, _ = network.stateless_call(trainable, non_trainable, x, training=False)
            return jnp.sum(outputs * weights), outputs

        jitted = jax.jit(jax.value_and_grad(selected, has_aux=True))

        def jax_gradient(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            (_, outputs), grads = jitted(x, weights)
            return np.asarray(outputs, dtype=np.float64), np.asarray(grads, dtype=np.float64)

        return jax_gradient
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec([None, *network.inputs[0].shape[1:]], network.inputs[0].dtype)
        weight_spec = tf.TensorSpec([network.outputs[0].shape[-1]], tf.float32)

        @tf.function(input_signature=[spec, weight_spec])
        def traced(x: Any, weights: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = network(x, training=False)
                total = tf.reduce_sum(outputs * weights)
            return outputs, tape.gradient(total, x)

        def tf_gradient(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            outputs, grads = traced(x, weights.astype(np.float32))
            return outputs.numpy().astype(np.float64), grads.numpy().astype(np.float64)

        return tf_gradient
    raise NoInputGradients(
        f"explanations of Keras models need gradients, implemented for the jax and tensorflow "
        f"backends; this server runs on {backend}"
    )
