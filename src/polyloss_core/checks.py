"""Every framework-independent argument check, and every error message, written once.

The adapters (torch, Keras, JAX) call these on their Python arguments before any
array work, and build their bad-label / bad-target / bad-shape errors with the
message functions here, so one mistake reads the same in every framework. Each
message names the argument and shows the bad value (SPEC section 6).

What stays in an adapter: checks of its own array types (dtype, device, shape of
a tensor), and *how* it reads label values (eagerly on the host, or not at all
inside a compiled graph). What those checks say comes from here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "REDUCTIONS",
    "check_axis",
    "check_bool",
    "check_class_indices",
    "check_epsilon",
    "check_gamma",
    "check_int",
    "check_label_smoothing",
    "check_reduction",
    "check_sigmoid_alpha",
    "check_target_range",
    "class_index_error",
    "real",
    "shape_error",
    "target_range_error",
]

#: The reduction names of torch and Keras losses ("sum_over_batch_size" is Keras' mean).
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")


def real(name: str, value: Any) -> float:
    """``value`` as a finite Python float, or an error naming ``name``.

    Accepts Python and NumPy real numbers and 0-d NumPy arrays (what
    ``np.float32(2.0)`` or ``np.array(0.1)`` hand over); rejects ``bool``, strings,
    sequences and anything non-finite.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is NaN or infinite.

    Examples:
        >>> real("gamma", np.float32(2.0))
        2.0
        >>> real("gamma", True)
        Traceback (most recent call last):
        ...
        TypeError: gamma must be a real number, got True of type bool
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {name}={number!r}")
    return number


def _within(name: str, value: Any, ok: Callable[[float], bool], rule: str) -> float:
    """``real(name, value)`` if ``ok`` accepts it, else ``ValueError: {name} must be {rule}, got ...``."""
    number = real(name, value)
    if not ok(number):
        raise ValueError(f"{name} must be {rule}, got {name}={number!r}")
    return number


def check_epsilon(value: Any, name: str = "epsilon") -> float:
    """``value`` as a valid leading coefficient ``eps_1``: a finite real number ``>= -1``.

    Below -1 the Poly-1 loss ``-log p + eps (1 - p)`` turns negative and rises as
    ``p -> 1`` (Leng et al. 2022, section 3).

    Args:
        value: a Python or NumPy real number.
        name: the argument's name for the message (default ``"epsilon"``).

    Returns:
        ``value`` as a Python float.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite or below -1.

    Examples:
        >>> check_epsilon(np.float32(2.0))
        2.0
        >>> check_epsilon(-1.5)
        Traceback (most recent call last):
        ...
        ValueError: epsilon must be a finite number >= -1, got epsilon=-1.5: with eps_1 below -1 the loss turns negative and rises as the prediction improves (Leng et al. 2022, section 3)
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < -1.0:
        raise ValueError(
            f"{name} must be a finite number >= -1, got {name}={number!r}: with eps_1 below -1 the loss "
            "turns negative and rises as the prediction improves (Leng et al. 2022, section 3)"
        )
    return number


def check_gamma(value: Any, name: str = "gamma") -> float:
    """``value`` as a focal exponent: a finite real number ``>= 0``.

    Examples:
        >>> check_gamma(2)
        2.0
    """
    return _within(name, value, lambda gamma: gamma >= 0, ">= 0")


def check_label_smoothing(value: Any, name: str = "label_smoothing") -> float:
    """``value`` as a label-smoothing amount in ``[0, 1)``.

    Examples:
        >>> check_label_smoothing(0.1)
        0.1
    """
    return _within(name, value, lambda smoothing: 0.0 <= smoothing < 1.0, "in [0, 1)")


def check_reduction(value: Any, allowed: Sequence[str] = REDUCTIONS, name: str = "reduction") -> str:
    """``value`` if it is one of the ``allowed`` reduction names.

    Examples:
        >>> check_reduction("sum")
        'sum'
    """
    if not isinstance(value, str) or value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {names}, got {name}={value!r}")
    return value


def check_int(name: str, value: Any) -> int:
    """``value`` as a Python int (Python or NumPy integers; not ``bool``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    return int(value)


def check_axis(axis: Any, shape: Sequence[Any], name: str = "logits") -> int:
    """``axis`` (an int) as a non-negative index into the ``shape`` of the array ``name``.

    Examples:
        >>> check_axis(-1, (4, 3))
        1
        >>> check_axis(2, (4, 3), name="y_pred")
        Traceback (most recent call last):
        ...
        ValueError: axis=2 is out of range for y_pred of shape (4, 3)
    """
    axis = check_int("axis", axis)
    if not shape:
        raise ValueError(f"{name} must have at least one dimension (the class axis), got a scalar of shape ()")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis={axis} is out of range for {name} of shape {tuple(shape)}")
    return axis % len(shape)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a Python bool (Python or NumPy booleans only)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")
    return bool(value)


def check_sigmoid_alpha(value: Any, *, negative_disables: bool = False, name: str = "alpha") -> float | None:
    """A sigmoid-family ``alpha``: ``None`` (no balancing) or a number in ``[0, 1]``.

    Args:
        value: the argument.
        negative_disables: torchvision's convention, where a negative ``alpha``
            means "no balancing" (``sigmoid_focal_loss(alpha=-1)``). Default ``False``.
        name: the argument's name for the message.

    Examples:
        >>> check_sigmoid_alpha(0.25), check_sigmoid_alpha(-1, negative_disables=True)
        (0.25, None)
    """
    if value is None:
        return None
    alpha = real(name, value)
    if negative_disables and alpha < 0:
        return None
    if not 0.0 <= alpha <= 1.0:
        extra = " (or None / negative to disable)" if negative_disables else " (or None to disable)"
        raise ValueError(f"{name} must be in [0, 1]{extra}, got {name}={alpha!r}")
    return alpha


# --------------------------------------------------------------------------- messages
def class_index_error(
    bad: Any, num_classes: int, ignore_index: int | None = None, name: str = "target", ignore_name: str = "ignore_index"
) -> ValueError:
    """The error for an integer label outside ``[0, num_classes)`` (and not ``ignore_index``).

    ``ignore_name`` is the framework's name for the ignored label (Keras: ``ignore_class``).

    Examples:
        >>> str(class_index_error(7, 5, -100))
        'target contains class index 7, outside the valid range [0, 5) for an input with 5 classes (ignore_index=-100)'
    """
    ignored = "" if ignore_index is None else f" ({ignore_name}={ignore_index})"
    return ValueError(
        f"{name} contains class index {int(bad)}, outside the valid range [0, {num_classes}) "
        f"for an input with {num_classes} classes{ignored}"
    )


def check_class_indices(
    values: Any,
    num_classes: int,
    ignore_index: int | None = None,
    *,
    name: str = "target",
    ignore_name: str = "ignore_index",
) -> None:
    """Raise for labels on the host that are not class indices in ``[0, num_classes)`` (``ignore_index`` aside).

    ``values`` are label values an adapter has already read without a device
    transfer (anything ``np.asarray`` takes); floating labels must be integral.
    The message is ``class_index_error``'s.

    Examples:
        >>> check_class_indices(np.array([0, 4, -100]), 5, -100)
        >>> check_class_indices(np.array([0, 5]), 5)
        Traceback (most recent call last):
        ...
        ValueError: target contains class index 5, outside the valid range [0, 5) for an input with 5 classes
    """
    flat = np.asarray(values).ravel()
    fractional = flat[flat != np.floor(flat)] if flat.dtype.kind == "f" else flat[:0]
    if fractional.size:
        raise ValueError(f"{name} must hold integer class indices, got the value {float(fractional[0])!r}")
    bad = (flat < 0) | (flat >= num_classes)
    if ignore_index is not None:
        bad &= flat != ignore_index
    if bad.any():
        raise class_index_error(flat[bad][0], num_classes, ignore_index, name=name, ignore_name=ignore_name)


def target_range_error(low: Any, high: Any, name: str = "target") -> ValueError:
    """The error for sigmoid targets outside ``[0, 1]`` (or NaN).

    Examples:
        >>> str(target_range_error(-0.5, 2.0))
        'target values must lie in [0, 1], got values in [-0.5, 2.0]'
    """
    return ValueError(f"{name} values must lie in [0, 1], got values in [{float(low)!r}, {float(high)!r}]")


def check_target_range(low: Any, high: Any, name: str = "target") -> None:
    """The sigmoid family's rule for targets that can be read: every one in ``[0, 1]``.

    ``low`` and ``high`` are the smallest and largest target (NaN where any is
    NaN, as NumPy's ``min`` / ``max`` and torch's ``aminmax`` give); every
    adapter reports that range in the error.

    Examples:
        >>> check_target_range(0.0, 1.0)
        >>> check_target_range(0.0, float("nan"), name="y_true")
        Traceback (most recent call last):
        ...
        ValueError: y_true values must lie in [0, 1], got values in [0.0, nan]
    """
    if not (low >= 0 and high <= 1):  # false for NaN too
        raise target_range_error(low, high, name)


def shape_error(name: str, expected: Any, got: Any, why: str = "") -> ValueError:
    """The error for an array of the wrong shape: ``name`` must have shape ``expected``.

    Examples:
        >>> str(shape_error("weight", (5,), (3,), "one entry per class"))
        'weight must have shape (5,), one entry per class, got (3,)'
    """
    because = f", {why}" if why else ""
    return ValueError(f"{name} must have shape {tuple(expected)}{because}, got {tuple(got)}")
