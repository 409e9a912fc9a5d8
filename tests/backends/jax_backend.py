"""polyloss_jax as a matrix backend (float64, float32, float16, bfloat16).

float64 needs JAX's 64-bit mode. It is switched on only around float64 work with
the scoped ``jax.enable_x64`` context manager, so every other JAX test keeps the
default 32-bit behaviour.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from polyloss_core import PolySpec
from polyloss_jax import poly_loss


def _x64_if(wide: bool) -> contextlib.AbstractContextManager[Any]:
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


def _is_float64(*arrays: Any) -> bool:
    return any(getattr(a, "dtype", None) == jnp.float64 for a in arrays)


class JaxBackend:
    name = "jax"
    dtypes = ("float64", "float32", "float16", "bfloat16")

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        array = np.asarray(array)
        if dtype is None:
            # Integer labels as JAX's default int32 (int64 would need 64-bit mode).
            return jnp.asarray(array.astype(np.int32) if np.issubdtype(array.dtype, np.integer) else array)
        with _x64_if(dtype == "float64"):
            return jnp.asarray(array, dtype=jnp.dtype(dtype))

    def to_numpy(self, value: Any) -> np.ndarray:
        array = np.asarray(value)
        return array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float64)

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        with _x64_if(_is_float64(logits, labels)):
            return poly_loss(logits, labels, spec, family=family, axis=axis)

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        def total(z: jax.Array) -> jax.Array:
            return poly_loss(z, labels, spec, family=family, axis=axis).sum()

        with _x64_if(_is_float64(logits, labels)):
            return jax.grad(total)(logits)


ADAPTER = JaxBackend()
