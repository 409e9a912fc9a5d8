"""The Keras adapter as a matrix backend, on whichever Keras backend is active.

``KERAS_BACKEND`` picks TensorFlow, JAX or PyTorch; the loss always goes through
the public :func:`polyloss_tf.poly_loss`, and the gradient through the active
backend's own autodiff (``tf.GradientTape``, ``jax.grad``, ``torch.autograd``).
JAX only holds float64 when ``jax_enable_x64`` is on, so float64 is declared for
JAX only in that case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from polyloss_core import PolySpec
from polyloss_tf import poly_loss

BACKEND = keras.backend.backend()


def _dtypes() -> tuple[str, ...]:
    low = ("float32", "float16", "bfloat16")
    if BACKEND == "jax":
        import jax

        return ("float64", *low) if jax.config.jax_enable_x64 else low
    return ("float64", *low)


class KerasBackend:
    name = "keras"
    dtypes = _dtypes()

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        array = np.asarray(array)
        if dtype is None:
            return ops.convert_to_tensor(array)
        return ops.convert_to_tensor(array.astype(np.float64), dtype=dtype)

    def to_numpy(self, value: Any) -> np.ndarray:
        if keras.backend.standardize_dtype(value.dtype) in ("float16", "bfloat16"):
            # Widen (exactly) before leaving the backend: 0-d bfloat16 tensors do not convert on TensorFlow.
            value = ops.cast(value, "float32")
        array = np.asarray(ops.convert_to_numpy(value))
        return array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float64)

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        return poly_loss(labels, logits, spec, family=family, from_logits=True, axis=axis)

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        def total(z: Any) -> Any:
            return ops.sum(ops.cast(self.loss(family, z, labels, spec, axis=axis), "float32"))

        return gradient(total, logits)


def gradient(fn: Callable[[Any], Any], x: Any) -> Any:
    """``d fn(x) / dx`` for a scalar-valued ``fn`` on the active Keras backend, with its own autodiff."""
    x = ops.convert_to_tensor(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return tape.gradient(value, x)
    if BACKEND == "jax":
        import jax

        return jax.grad(lambda z: ops.cast(fn(z), "float32"))(x)
    if BACKEND == "torch":
        z = x.detach().clone().requires_grad_(True)
        fn(z).backward()
        return z.grad
    raise RuntimeError(f"no gradient recipe for the Keras backend {BACKEND!r}")


ADAPTER = KerasBackend()
