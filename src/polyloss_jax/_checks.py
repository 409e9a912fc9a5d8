"""Argument checking shared by the public JAX losses.

Everything here runs at trace time on static information (dtypes, shapes,
Python numbers), except ``concrete``, which lets the losses inspect label
*values* when they are ordinary arrays rather than tracers (eager calls).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Axis = int | tuple[int, ...]


def as_array(name: str, value: Any) -> jax.Array:
    """``value`` as a JAX array (tracers pass through) or a ``TypeError`` naming ``name``."""
    try:
        return jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"{name} must be an array, got {type(value).__name__}: {err}") from None


def check_logits(logits: Any) -> jax.Array:
    """Floating-point logits with at least one dimension."""
    array = as_array("logits", logits)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(f"logits must have a floating-point dtype, got {array.dtype}")
    return array


def normalize_axes(axis: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Non-negative class axes in the caller's order; errors name ``axis``."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer, tuple)):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"axis must be an int or a non-empty tuple of ints, got {axis!r}")
    ndim = len(shape)
    if ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis), got a scalar of shape ()")
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis={axis!r} is out of range for logits of shape {shape}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis={axis!r} names the same dimension twice")
    if math.prod(shape[a] for a in out) == 0:
        raise ValueError(f"logits must have at least one class along axis={axis!r}, got shape {shape}")
    return tuple(out)


def example_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without the class axes: the shape of one loss per example."""
    return tuple(s for d, s in enumerate(shape) if d not in axes)


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when an array of ``shape`` broadcasts to ``target`` without changing it."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))


def check_where(where: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> jax.Array | None:
    """A boolean mask broadcastable to the logits' shape (per-example masks get the class axes)."""
    if where is None:
        return None
    mask = as_array("where", where)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    per_example = example_shape(shape, axes)
    if mask.ndim == len(shape) and broadcasts_to(mask.shape, shape):
        return mask
    if mask.ndim == len(per_example) and broadcasts_to(mask.shape, per_example):
        return jnp.expand_dims(mask, sorted(axes))
    raise ValueError(
        f"where must broadcast to the logits' shape {shape} or to the per-example shape {per_example}, got {mask.shape}"
    )


def concrete(value: jax.Array) -> np.ndarray | None:
    """The values of ``value`` when it is a concrete array; ``None`` for a tracer (inside jit or vmap)."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def static_real(name: str, value: Any) -> float:
    """A Python float from a number or a concrete 0-d array; tracers are a ``TypeError``."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{name} must be a concrete Python number: it configures the loss and is validated once, "
            f"so it cannot be a traced value; got {value!r}. Close over it or mark it static."
        )
    if isinstance(value, (np.ndarray, jax.Array)) and value.shape == () and not np.issubdtype(value.dtype, np.bool_):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def compute_dtype(dtype: Any) -> Any:
    """The dtype the arithmetic runs in: float32 for 16-bit (and smaller) floats, else ``dtype``."""
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else jnp.dtype(dtype)
