"""The Keras adapter as a matrix backend, on whichever Keras backend is active.

``KERAS_BACKEND`` picks TensorFlow, JAX or PyTorch; every public function and
class of :mod:`polyloss_tf` is called with Keras' conventions
(``(y_true, y_pred)``, ``from_logits=True``, classes on ``axis``, classes with
``reduction="none"``), and the gradient comes from the active backend's own
autodiff (``tf.GradientTape``, ``jax.grad``, ``torch.autograd``). JAX only
holds float64 when ``jax_enable_x64`` is on, so float64 is declared for JAX
only in that case.

Output dtype: the functions return float32 for float16 / bfloat16 ``y_pred``
and ``y_pred``'s dtype otherwise (the adapter's documented rule); the classes
follow ``keras.losses.Loss``, which casts to the loss' ``dtype`` (default
``floatx()``, float32), so they are built with ``dtype="float64"`` for float64
cases, as a Keras user would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from unittest import mock

import keras
import numpy as np
from keras import ops

import polyloss_tf as ptf
from polyloss_core import PolySpec
from polyloss_tf import poly_loss

from . import (
    DENSE_SIGMOID_LABELS,
    DENSE_SOFTMAX_LABELS,
    HALF,
    EntryPoint,
    any_spec,
    epsilon_of,
    poly1_only,
    spec_entry_points,
)

BACKEND = keras.backend.backend()


def _dtypes() -> tuple[str, ...]:
    low = ("float32", "float16", "bfloat16")
    if BACKEND == "jax":
        import jax

        return ("float64", *low) if jax.config.jax_enable_x64 else low
    return ("float64", *low)


# Keras (like TensorFlow's fused softmax cross-entropy, whose gradient is ``p - q``) documents dense
# targets as distributions: rows that do not sum to 1 (``prob-unnorm``, ``zero-rows``) are outside
# its contract, so its dense entry points are not asked about them.
KERAS_DENSE_LABELS = DENSE_SOFTMAX_LABELS - {"prob-unnorm", "zero-rows"}
KERAS_SOFTMAX_LABELS = KERAS_DENSE_LABELS | {"int"}


# The loss classes match ranks as Keras' own losses do (``squeeze_or_expand_to_same_rank``): with one
# class, ``(N,)`` labels and ``(N, 1)`` predictions are ambiguous between class indices and targets,
# so the classes are asked about two classes or more (the functions take every class count).
CLASS_MIN_CLASSES = 2


def _class_dtype(dtype: str) -> str | None:
    return "float64" if dtype == "float64" else None


def _alpha_list(alpha: Any) -> Any:
    return list(alpha) if isinstance(alpha, tuple) else alpha


# Each maker: case -> (function to call as fn(y_true, y_pred), keyword arguments), for functions;
# classes are built from the same keyword arguments plus reduction="none".
def _poly1_ce(case: Any) -> dict[str, Any]:
    return {"epsilon": epsilon_of(case.spec), "label_smoothing": case.spec.label_smoothing, "axis": case.axis}


def _sparse(case: Any) -> dict[str, Any]:
    return {"epsilon": epsilon_of(case.spec), "axis": case.axis}


def _categorical_focal(case: Any) -> dict[str, Any]:
    spec = case.spec
    return {
        "epsilon": epsilon_of(spec),
        "alpha": _alpha_list(spec.alpha),
        "gamma": spec.gamma,
        "label_smoothing": spec.label_smoothing,
        "axis": case.axis,
    }


def _binary_focal(case: Any) -> dict[str, Any]:
    spec = case.spec
    balanced = spec.alpha is not None
    return {
        "epsilon": epsilon_of(spec),
        "apply_class_balancing": balanced,
        "alpha": spec.alpha if balanced else 0.25,
        "gamma": spec.gamma,
        "label_smoothing": spec.label_smoothing,
        "axis": case.axis,
    }


def _function(fn: Callable[..., Any], kwargs: Callable[[Any], dict[str, Any]]) -> Callable[[Any, Any, Any, str], Any]:
    return lambda z, y, case, dtype: fn(y, z, from_logits=True, **kwargs(case))


def _class(cls: type, kwargs: Callable[[Any], dict[str, Any]]) -> Callable[[Any, Any, Any, str], Any]:
    def call(z: Any, y: Any, case: Any, dtype: str) -> Any:
        loss = cls(from_logits=True, reduction="none", dtype=_class_dtype(dtype), **kwargs(case))
        return loss(y, z)

    return call


_NAMED = (
    # (function, class, family, label kinds, specs, keyword-argument maker, averaged over axis)
    (
        ptf.poly1_categorical_crossentropy,
        ptf.Poly1CategoricalCrossentropy,
        "softmax",
        KERAS_DENSE_LABELS,
        poly1_only(),
        _poly1_ce,
        False,
    ),
    (
        ptf.poly1_sparse_categorical_crossentropy,
        ptf.Poly1SparseCategoricalCrossentropy,
        "softmax",
        frozenset({"int"}),
        poly1_only(smoothing=False),
        _sparse,
        False,
    ),
    (
        ptf.poly1_categorical_focal_crossentropy,
        ptf.Poly1CategoricalFocalCrossentropy,
        "softmax",
        KERAS_DENSE_LABELS,
        poly1_only(focal=True, alpha=("none", "scalar", "vector")),
        _categorical_focal,
        False,
    ),
    (
        ptf.poly1_binary_crossentropy,
        ptf.Poly1BinaryCrossentropy,
        "sigmoid",
        DENSE_SIGMOID_LABELS,
        poly1_only(),
        _poly1_ce,
        True,
    ),
    (
        ptf.poly1_binary_focal_crossentropy,
        ptf.Poly1BinaryFocalCrossentropy,
        "sigmoid",
        DENSE_SIGMOID_LABELS,
        poly1_only(focal=True, alpha=("none", "scalar")),
        _binary_focal,
        True,
    ),
)


def _spec_class(z: Any, y: Any, c: Any, dtype: str) -> Any:
    loss = ptf.PolyLoss(
        c.spec, family=c.family, from_logits=True, axis=c.axis, reduction="none", dtype=_class_dtype(dtype)
    )
    return loss(y, z)


def _poly_loss(z: Any, y: Any, c: Any, dtype: str) -> Any:
    return poly_loss(y, z, c.spec, family=c.family, from_logits=True, axis=c.axis)


def _compiled(jit_compile: bool) -> Callable[[Any, Any, Any, str], Any]:
    """``poly_loss`` inside a ``tf.function`` (TensorFlow's graph routes: the fused op with custom gradients,
    the small XLA-compiled pieces, the one-hot ``tf.cond``) or with ``jit_compile`` (the XLA routes, with the
    one-hot branch that XLA takes from ``XLA_BRANCH_MIN_CLASSES`` classes on forced at the matrix's sizes)."""
    import tensorflow as tf

    from polyloss_tf import _impl

    @functools.lru_cache(maxsize=4)  # the value and then the gradient of one case share one trace
    def traced(c: Any, dtype: str) -> Any:
        return tf.function(lambda z, y: _poly_loss(z, y, c, dtype), jit_compile=jit_compile, autograph=False)

    def call(z: Any, y: Any, c: Any, dtype: str) -> Any:
        with mock.patch.object(_impl, "XLA_BRANCH_MIN_CLASSES", 0):  # read while tracing, inside this call
            return traced(c, dtype)(z, y)

    return call


def _entry_points() -> tuple[EntryPoint, ...]:
    entries = list(
        spec_entry_points(
            _poly_loss,
            _spec_class,
            KERAS_SOFTMAX_LABELS,
            class_averages_sigmoid=True,
            class_min_classes=CLASS_MIN_CLASSES,
        )
    )
    if BACKEND == "tensorflow":  # target rows and sigmoid targets: the routes that differ once traced
        for name, jit_compile in (("poly_loss[tf.function]", False), ("poly_loss[jit_compile]", True)):
            for family, labels in (("softmax", KERAS_DENSE_LABELS), ("sigmoid", DENSE_SIGMOID_LABELS)):
                entries.append(EntryPoint(name, family, labels, any_spec, _compiled(jit_compile)))
    for fn, cls, family, labels, specs, kwargs, averaged in _NAMED:
        entries.append(EntryPoint(fn.__name__, family, labels, specs, _function(fn, kwargs), mean_over_axis=averaged))
        entries.append(
            EntryPoint(
                cls.__name__,
                family,
                labels,
                specs,
                _class(cls, kwargs),
                is_class=True,
                mean_over_axis=averaged,
                min_classes=CLASS_MIN_CLASSES,
            )
        )
    return tuple(entries)


class KerasBackend:
    name = "keras"
    dtypes = _dtypes()
    entry_points = _entry_points()

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

    def dtype_name(self, value: Any) -> str:
        return keras.backend.standardize_dtype(value.dtype)

    def output_dtype(self, entry: EntryPoint, dtype: str) -> str:
        if entry.is_class:
            return "float64" if dtype == "float64" else keras.config.floatx()
        return "float32" if dtype in HALF else dtype

    def tolerance_dtype(self, entry: EntryPoint, dtype: str) -> str:
        # Keras' own ``ops.mean`` on its torch backend computes float64 in float32 (Keras 3.15:
        # ``dtypes.result_type("float64", "float32")`` is float32 there), and the binary losses average
        # over the class axis with it, as Keras' ``BinaryCrossentropy`` does.
        if BACKEND == "torch" and entry.mean_over_axis and dtype == "float64":
            return "float32"
        return dtype

    def call(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        return entry.call(logits, labels, case, dtype)

    def grad_of(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        return gradient(lambda z: ops.sum(ops.cast(entry.call(z, labels, case, dtype), "float32")), logits)

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
