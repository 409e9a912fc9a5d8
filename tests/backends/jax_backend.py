"""polyloss_jax as a matrix backend (float64, float32, float16, bfloat16).

float64 needs JAX's 64-bit mode. It is switched on only around float64 work with
the scoped ``jax.enable_x64`` context manager, so every other JAX test keeps the
default 32-bit behaviour. Output dtype (the adapter's documented rule): float32
for float16 / bfloat16 logits, the logits' dtype otherwise.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from polyloss_core import PolySpec
from polyloss_jax import (
    linear_poly1_cross_entropy_with_integer_labels,
    linear_poly_loss,
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
    poly_loss,
)

from . import (
    DENSE_SIGMOID_LABELS,
    DENSE_SOFTMAX_LABELS,
    HALF,
    SIGMOID_LABELS,
    SOFTMAX_LABELS,
    EntryPoint,
    any_spec,
    epsilon_of,
    poly1_only,
)


def _x64_if(wide: bool) -> contextlib.AbstractContextManager[Any]:
    return jax.enable_x64(True) if wide else contextlib.nullcontext()


def _is_float64(*arrays: Any) -> bool:
    return any(getattr(a, "dtype", None) == jnp.float64 for a in arrays)


_POLY1 = poly1_only(smoothing=False)


def _as_linear_head(fn: Any) -> Any:
    """A fused head ``fn(hidden, weight, labels, case)`` called with the case's logits as ``hidden`` and ``weight = I``.

    ``hidden @ I.T`` is the logits exactly, so the fused head's value and its gradient with
    respect to ``hidden`` are compared with the reference like any other entry point.
    """

    def call(logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        z = jnp.moveaxis(logits, case.axis, -1)
        eye = jnp.eye(z.shape[-1], dtype=z.dtype)
        return fn(z, eye, labels, case)

    return call


def _linear_smoothing(spec: PolySpec) -> bool:
    """``linear_poly_loss`` smooths labels for cross-entropy and Poly-1 without per-class alpha only."""
    plain = spec.gamma == 0 and len(spec.epsilons) <= 1 and not isinstance(spec.alpha, tuple)
    return not spec.label_smoothing or plain


def _entry_points() -> tuple[EntryPoint, ...]:
    def spec_call(z: Any, y: Any, c: Any, dtype: str) -> Any:
        return poly_loss(z, y, c.spec, family=c.family, axis=c.axis)

    return (
        EntryPoint(
            "linear_poly1_cross_entropy_with_integer_labels",
            "softmax",
            frozenset({"int"}),
            _POLY1,
            _as_linear_head(
                lambda h, w, y, c: linear_poly1_cross_entropy_with_integer_labels(h, w, y, epsilon=epsilon_of(c.spec))
            ),
        ),
        EntryPoint(
            "linear_poly_loss",
            "softmax",
            frozenset({"int"}),
            _linear_smoothing,
            _as_linear_head(lambda h, w, y, c: linear_poly_loss(h, w, y, c.spec)),
        ),
        EntryPoint("poly_loss", "softmax", SOFTMAX_LABELS, any_spec, spec_call),
        EntryPoint("poly_loss", "sigmoid", SIGMOID_LABELS, any_spec, spec_call),
        EntryPoint(
            "poly1_cross_entropy",
            "softmax",
            DENSE_SOFTMAX_LABELS,
            _POLY1,
            lambda z, y, c, dtype: poly1_cross_entropy(z, y, epsilon=epsilon_of(c.spec), axis=c.axis),
        ),
        EntryPoint(
            "poly1_cross_entropy_with_integer_labels",
            "softmax",
            frozenset({"int"}),
            _POLY1,
            lambda z, y, c, dtype: poly1_cross_entropy_with_integer_labels(
                z, y, epsilon=epsilon_of(c.spec), axis=c.axis
            ),
        ),
        EntryPoint(
            "poly1_sigmoid_focal_loss",
            "sigmoid",
            DENSE_SIGMOID_LABELS,
            poly1_only(focal=True, alpha=("none", "scalar"), smoothing=False),
            lambda z, y, c, dtype: poly1_sigmoid_focal_loss(
                z, y, epsilon=epsilon_of(c.spec), alpha=c.spec.alpha, gamma=c.spec.gamma
            ),
        ),
    )


class JaxBackend:
    name = "jax"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    entry_points = _entry_points()

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

    def dtype_name(self, value: Any) -> str:
        return str(value.dtype)

    def output_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return "float32" if dtype in HALF else dtype

    def grad_of(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        with _x64_if(_is_float64(logits, labels)):
            return jax.grad(lambda z: entry.call(z, labels, case, dtype).sum())(logits)

    def tolerance_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return dtype

    def call(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        with _x64_if(_is_float64(logits, labels)):
            return entry.call(logits, labels, case, dtype)

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        with _x64_if(_is_float64(logits, labels)):
            return poly_loss(logits, labels, spec, family=family, axis=axis)

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        def total(z: jax.Array) -> jax.Array:
            return poly_loss(z, labels, spec, family=family, axis=axis).sum()

        with _x64_if(_is_float64(logits, labels)):
            return jax.grad(total)(logits)


ADAPTER = JaxBackend()
