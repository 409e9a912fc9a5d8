"""The JAX array checks: dtypes, shapes, ``axis``, ``where`` and (where it costs no transfer) label values.

Everything runs at trace time on static information, except ``host_labels``,
which reads label values only when they are already on the host (see its rule).
The messages come from ``polyloss_core.checks``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from polyloss_core.checks import check_axis, check_class_indices, check_epsilon, check_target_range, shape_error

Axis = int | tuple[int, ...]


def as_array(name: str, value: Any) -> jax.Array:
    """``value`` as a JAX array (tracers pass through) or a ``TypeError`` naming ``name``."""
    try:
        return jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"{name} must be an array, got {type(value).__name__}: {err}") from None


def logits(value: Any) -> jax.Array:
    """Floating-point logits."""
    array = as_array("logits", value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(f"logits must have a floating-point dtype, got {array.dtype}")
    return array


_KINDS = {
    "integer": ("integer class indices", "poly1_cross_entropy", "probabilities"),
    "floating": ("floating-point probabilities", "poly1_cross_entropy_with_integer_labels", "class indices"),
}


def label_kind(value: Any, kind: str) -> None:
    """Labels of the dtype kind (``"integer"`` / ``"floating"``) a named function takes, read without converting them."""
    dtype = getattr(value, "dtype", None) or as_array("labels", value).dtype
    if not jnp.issubdtype(dtype, getattr(jnp, kind)):
        what, other, use = _KINDS[kind]
        raise TypeError(f"labels must be {what}, got dtype {dtype}; use {other} for {use}")


def axes(axis: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Non-negative class axes in the caller's order; errors name ``axis``."""
    one = isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)
    items = (axis,) if one else axis
    if (
        not isinstance(items, tuple)
        or not items
        or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in items)
    ):
        raise TypeError(f"axis must be an int or a non-empty tuple of ints, got {axis!r}")
    out = tuple(check_axis(a, shape) for a in items)
    if len(set(out)) != len(out):
        raise ValueError(f"axis={axis!r} names the same dimension twice")
    if math.prod(shape[a] for a in out) == 0:
        raise ValueError(f"logits must have at least one class along axis={axis!r}, got shape {shape}")
    return out


def example_shape(shape: tuple[int, ...], class_axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without the class axes: the shape of one loss per example."""
    return tuple(s for d, s in enumerate(shape) if d not in class_axes)


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when an array of ``shape`` broadcasts to ``target`` without changing it."""
    return len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))


def where(mask: Any, shape: tuple[int, ...], class_axes: tuple[int, ...]) -> jax.Array | None:
    """A boolean mask broadcastable to the logits' shape (per-example masks get the class axes)."""
    if mask is None:
        return None
    array = as_array("where", mask)
    if array.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {array.dtype}")
    per_example = example_shape(shape, class_axes)
    if array.ndim == len(shape) and broadcasts_to(array.shape, shape):
        return array
    if array.ndim == len(per_example) and broadcasts_to(array.shape, per_example):
        return jnp.expand_dims(array, sorted(class_axes))
    raise shape_error("where", shape, array.shape, f"or the per-example shape {per_example}")


def labels(y: jax.Array, raw: Any, shape: tuple[int, ...], class_axes: tuple[int, ...], family: str) -> bool:
    """Labels' dtype, shape and (host-readable) values for the family; ``True`` when they are class indices.

    Softmax: integer class indices of the per-example shape, or floating
    distributions broadcastable to the logits. Sigmoid: integer class indices of
    the per-example shape (one-hot along the class axes), or numeric / boolean
    targets in ``[0, 1]`` broadcastable to the logits.
    """
    integer, floating = jnp.issubdtype(y.dtype, jnp.integer), jnp.issubdtype(y.dtype, jnp.floating)
    want = example_shape(shape, class_axes)
    indices = integer and (family == "softmax" or len(want) == y.ndim < len(shape))
    if not (integer or floating or (family == "sigmoid" and y.dtype == jnp.bool_)):
        kinds = "integer class indices or floating probabilities" if family == "softmax" else "numeric targets"
        raise TypeError(f"labels must be {kinds}, got dtype {y.dtype}")
    if indices and y.shape != want:
        named = class_axes if len(class_axes) > 1 else class_axes[0]
        raise shape_error("labels", want, y.shape, f"the logits' shape {shape} without axis {named}")
    if not indices and not broadcasts_to(y.shape, shape):
        raise shape_error("labels", shape, y.shape, "or a shape that broadcasts to it")
    if indices:
        _check_class_values(raw, math.prod(shape[a] for a in class_axes))
    elif family == "sigmoid":
        _check_target_values(raw)
    return indices


def host_labels(raw: Any) -> np.ndarray | None:
    """The label values when reading them costs no device transfer, else ``None``. The host-copy rule.

    Read: NumPy arrays, Python numbers and lists, and JAX arrays that live on
    CPU devices (NumPy views their memory). Never read: tracers (``jit``,
    ``vmap``, ``grad`` of a traced value) and arrays on an accelerator; there an
    out-of-range label gives ``NaN`` for its example instead (SPEC section 6).
    """
    if isinstance(raw, jax.core.Tracer):
        return None
    if isinstance(raw, jax.Array) and any(d.platform != "cpu" for d in raw.devices()):
        return None
    return np.asarray(raw)


def _check_class_values(raw: Any, num_classes: int) -> None:
    """Every class index in ``[0, num_classes)``, for labels ``host_labels`` may read.

    The labels as the caller passed them are read, so a NumPy int64 label that
    would wrap when JAX narrows it to int32 is still caught.
    """
    values = host_labels(raw)
    if values is not None:
        check_class_indices(values, num_classes, name="labels")


def _check_target_values(raw: Any) -> None:
    """Every sigmoid target in ``[0, 1]``, for labels ``host_labels`` may read."""
    values = host_labels(raw)
    if values is not None and values.size:
        check_target_range(values.min(), values.max(), name="labels")


def epsilon(value: Any) -> float | jax.Array:
    """A concrete ``epsilon`` checked by core (a Python float); a traced one as a 0-d array, unchecked.

    A concrete array of more than one number is a shape error (``ValueError``, SPEC section 6).
    """
    if not isinstance(value, jax.core.Tracer):
        if isinstance(value, (jax.Array, np.ndarray)) and value.ndim:
            raise ValueError(f"epsilon must be a scalar, got an array of shape {value.shape}")
        return check_epsilon(np.asarray(value) if isinstance(value, jax.Array) else value)
    if value.ndim or not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"a traced epsilon must be a floating-point scalar, got {value.dtype}{list(value.shape)}")
    return value


def compute_dtype(dtype: Any) -> Any:
    """The dtype the arithmetic runs in: float32 for 16-bit (and smaller) floats, else ``dtype``."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else jnp.dtype(dtype)
