"""Tensor checks of the Keras adapter: dtypes, shapes, the label layout and (where free) label values.

What a check *says* comes from ``polyloss_core.checks``; this module only
decides how Keras tensors are read. Label values are read only where they
already are on the host: NumPy input, or an eager tensor on a CPU device. A
traced tensor (``tf.function``, XLA, ``jax.jit``) or an eager tensor on an
accelerator is never copied back; ``polyloss_tf._impl`` then turns a bad
label into NaN on the device (SPEC section 6).

Two helpers are Keras' own, from ``keras.src`` because Keras 3 does not export
them: the rank matching of its loss wrappers (``squeeze_or_expand_to_same_rank``)
and the mask its sparse loss sets for ``ignore_class`` (``set_keras_mask``).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.backend import set_keras_mask as set_keras_mask
from keras.src.losses.loss import squeeze_or_expand_to_same_rank as squeeze_or_expand_to_same_rank

from polyloss_core.checks import check_axis, check_class_indices, check_target_range, shape_error

FLOATS = ("float16", "bfloat16", "float32", "float64")


def _tensor(name: str, x: Any, allowed: Any, what: str) -> Any:
    """``x`` as a tensor whose dtype passes ``allowed``, or ``TypeError`` naming ``name``."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold {what}, got dtype {x.dtype}")
    tensor = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if not allowed(dtype):
        raise TypeError(f"{name} must hold {what}, got dtype {dtype}")
    return tensor


def predictions(y_pred: Any) -> Any:
    return _tensor("y_pred", y_pred, FLOATS.__contains__, "floating values (float16, bfloat16, float32 or float64)")


def labels(y_true: Any) -> Any:
    def numeric(dtype: str) -> bool:
        return keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype) or dtype == "bool"

    return _tensor("y_true", y_true, numeric, "numbers (integer class indices or floating targets)")


def class_axis(axis: int, shape: tuple[int | None, ...]) -> int:
    """``axis`` as a non-negative index into ``shape``; the class axis must exist and have a known size."""
    ax = check_axis(axis, shape, name="y_pred")
    if shape[ax] is None:
        raise ValueError(f"axis {axis} of y_pred (the classes) must have a known size, got y_pred.shape={shape}")
    return ax


def static_shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def layout(y_true: Any, y_pred: Any, axis: int, expect: str | None) -> tuple[str, Any]:
    """``("index" | "dense", y_true)``: class indices or per-class targets, shape-checked.

    Indices have ``y_pred``'s shape without ``axis``, or size 1 there (squeezed,
    as Keras' sparse loss does, also for a single class); targets have
    ``y_pred``'s shape. The layout is read from the shape, not the dtype,
    because ``keras.losses.Loss.__call__`` casts ``y_true`` to the loss dtype.
    """
    pred, true = static_shape(y_pred), static_shape(y_true)
    index_shape = pred[:axis] + pred[axis + 1 :]
    kind = "index" if len(true) == len(pred) - 1 else "dense"
    squeeze = expect == "index" or (expect is None and pred[axis] != 1)
    if kind == "dense" and len(true) == len(pred) and true[axis] == 1 and squeeze:
        y_true, kind = ops.squeeze(y_true, axis=axis), "index"
        true = static_shape(y_true)
    if expect is not None and kind != expect:
        wanted = index_shape if expect == "index" else pred
        why = "class indices" if expect == "index" else "per-class targets"
        raise shape_error("y_true", wanted, true, f"{why} for y_pred.shape={pred}")
    wanted = index_shape if kind == "index" else pred
    if len(true) != len(wanted) or any(
        a is not None and b is not None and a != b for a, b in zip(true, wanted, strict=True)
    ):
        why = f"targets like y_pred.shape={pred} or class indices along axis {axis}"
        raise shape_error("y_true", wanted, true, why)
    return kind, y_true


def warn_single_class(num_classes: int, y_pred: Any) -> None:
    """Keras' own warning for categorical losses given one class on the class axis."""
    if num_classes == 1:
        warnings.warn(
            "In a categorical PolyLoss, expected y_pred.shape to be (batch_size, num_classes) with num_classes > 1. "
            f"Received: y_pred.shape={y_pred.shape}. Consider using 'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=4,
        )


def host_values(x: Any) -> np.ndarray | None:
    """``x``'s values when reading them costs no device-to-host copy: an eager tensor on a CPU, else ``None``."""
    if keras.backend.is_keras_tensor(x):
        return None
    try:
        device = x.device
        kind = getattr(device, "platform", None) or getattr(device, "type", None) or str(device)
        if "cpu" not in str(kind).lower():
            return None  # a traced tensor ("" on TensorFlow) or an accelerator
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:  # tracers raise their own concretization errors
        return None


def index_values_checked(y: Any, num_classes: int, ignore_class: int | None) -> bool:
    """Raise for class indices outside ``[0, C)`` when they are on the host; ``False`` if unread."""
    values = host_values(y)
    if values is not None:
        check_class_indices(values, num_classes, ignore_class, name="y_true", ignore_name="ignore_class")
    return values is not None


def target_values_checked(t: Any) -> bool:
    """Raise for sigmoid targets outside ``[0, 1]`` when they are on the host; ``False`` if unread."""
    values = host_values(t)
    if values is None:
        return False
    if values.size:
        check_target_range(values.min(), values.max(), name="y_true")
    return True
