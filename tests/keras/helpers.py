"""Small utilities shared by the Keras tests: data, NumPy conversion and gradients on any backend."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from tests.backends.keras_backend import gradient as gradient  # the matrix backend's, shared

BACKEND = keras.backend.backend()
# float32 agreement between two float32 computations of the same quantity.
RTOL, ATOL = 2e-5, 2e-6


def to_np(value: Any) -> np.ndarray:
    if keras.backend.standardize_dtype(value.dtype) in ("float16", "bfloat16"):
        value = ops.cast(value, "float32")
    return np.asarray(ops.convert_to_numpy(value)).astype(np.float64)


def logits(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=shape).astype(np.float32)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def one_hot(labels: np.ndarray, classes: int, axis: int = -1) -> np.ndarray:
    return np.moveaxis(np.eye(classes, dtype=np.float32)[labels], -1, axis)


def soft_labels(shape: tuple[int, ...], seed: int, axis: int = -1) -> np.ndarray:
    raw = np.random.default_rng(seed).uniform(0.05, 1.0, size=shape)
    return (raw / raw.sum(axis=axis, keepdims=True)).astype(np.float32)


def prob_logits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Logits whose softmax is Keras' treatment of probabilities ``p`` (renormalised, clipped)."""
    q = p.astype(np.float64) / p.sum(axis=axis, keepdims=True)
    return np.log(np.clip(q, 1e-7, 1 - 1e-7))


def binary_prob_logits(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(q) - np.log1p(-q)


def _tracers() -> dict[str, Any]:
    """Eager and every compiler of the active backend: ``{name: decorator or None}``."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return {"eager": None, "tf.function": tf.function, "xla": lambda f: tf.function(f, jit_compile=True)}
    if BACKEND == "jax":
        import jax

        return {"eager": None, "jax.jit": jax.jit}
    return {"eager": None}


TRACERS = _tracers()


def value_and_grad(loss: Any, y: Any, z: Any, tracer: str) -> tuple[np.ndarray, np.ndarray]:
    """The value and the gradient of ``sum(loss(y, z))`` with respect to ``z``, eagerly or under ``tracer``."""
    y, z = ops.convert_to_tensor(y), ops.convert_to_tensor(z)
    compile_ = TRACERS[tracer]
    if compile_ is None:
        return to_np(loss(y, z)), to_np(gradient(lambda t: ops.sum(loss(y, t)), z))
    if BACKEND == "jax":
        import jax

        value = compile_(lambda labels, t: loss(labels, t))(y, z)
        grad = compile_(jax.grad(lambda t, labels: ops.sum(loss(labels, t))))(z, y)
        return to_np(value), to_np(grad)

    def both(labels: Any, t: Any) -> Any:
        return loss(labels, t), gradient(lambda u: ops.sum(loss(labels, u)), t)

    value, grad = compile_(both)(y, z)
    return to_np(value), to_np(grad)
