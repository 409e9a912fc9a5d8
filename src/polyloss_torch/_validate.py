"""torch tensor checks: types, dtypes and shapes, and label values where that needs no device sync.

The messages come from ``polyloss_core.checks``. The rule for values (written
down in ``docs/torch.md``):

* class indices are never read in the hot path, on any device. An index outside
  ``[0, C)`` that is not ``ignore_index`` makes the ``gather`` / ``scatter`` /
  ``index_select`` kernel fail, as in ``F.cross_entropy``: on CPU the kernel
  raises and ``explain_index_error`` turns that into core's ``ValueError``
  naming the value; on an accelerator the kernel's device-side assertion fires;
  inside a compiled graph the generated kernel's bounds check raises.
* sigmoid targets are read (their minimum and maximum) only when they are in
  host memory and eager (``on_host``): reading CPU memory is no device
  sync. Elsewhere (accelerators, ``torch.compile``, ``torch.func``) nothing is
  read and an element whose target lies outside ``[0, 1]`` gets a NaN loss
  (SPEC section 6).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyloss_core.checks import check_target_range, class_index_error, shape_error

from ._autograd import eager


def tensor(name: str, value: Any, *, floating: bool = False, optional: bool = False) -> Tensor:
    """``value`` if it is a tensor (of a floating dtype where ``floating``); ``optional`` only words the error."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{' or None' if optional else ''}, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating point dtype, got {value.dtype}")
    return value


def logits(input: Any) -> int:
    """Check ``input`` (a floating tensor with at least one dimension); return its class dimension."""
    if tensor("input", input, floating=True).dim() == 0:
        raise ValueError("input must have shape (C,) or (N, C, d1, ..., dK), got a 0-dimensional tensor")
    return 0 if input.dim() == 1 else 1


def holds_indices(target: Any) -> bool:
    """Check ``target`` is a tensor of a usable dtype; return whether it holds class indices."""
    dtype = tensor("target", target).dtype
    if dtype == torch.bool or dtype.is_complex:
        raise TypeError(f"target must hold integer class indices or floating point targets, got dtype {dtype}")
    return not dtype.is_floating_point


def index_shape(input: Tensor, target: Tensor, dim: int) -> None:
    """Class indices must have the input's shape without the class dimension."""
    expected = list(input.shape)  # lists compare faster than torch.Size slices (a per-call cost)
    del expected[dim]
    if list(target.shape) != expected:
        why = f"the input's shape {tuple(input.shape)} without the class dimension {dim}"
        raise shape_error("class-index target", expected, target.shape, why)


def dense_shape(input: Tensor, target: Tensor, what: str = "floating point target (class probabilities)") -> None:
    """Dense targets must have the input's shape."""
    if target.shape != input.shape:
        raise shape_error(what, input.shape, target.shape, "the input's shape")


def probability_ignore_index(ignore_index: int) -> None:
    """``F.cross_entropy``'s rule: a non-negative ``ignore_index`` is an error with probability targets."""
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")


def weight(weight: Any) -> Tensor | None:
    """A per-class weight: ``None`` or a floating 1-d tensor (its length is checked per call)."""
    if weight is None:
        return None
    if tensor("weight", weight, floating=True, optional=True).dim() != 1:
        raise ValueError(f"weight must have shape (C,), one entry per class, got {tuple(weight.shape)}")
    return weight


def weight_for(weight: Tensor | None, num_classes: int) -> None:
    """The weight's length must be the number of classes."""
    if weight is not None and weight.shape[0] != num_classes:
        raise shape_error("weight", (num_classes,), weight.shape, "one entry per class")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays; float16, bfloat16 (any other float) are computed in float32, as under ``torch.autocast``."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# Per-call checks memoised by what they read (functional's Python options, ``layout``'s shapes and
# dtypes): a repeated call, the training loop's case, costs one lookup instead of the checks (a cost
# small heads pay in full). Each memo is emptied when it reaches this size (e.g. an epsilon schedule).
MEMO_SIZE = 64
_LAYOUTS: dict[tuple[Any, ...], tuple[int, bool, torch.dtype]] = {}


def remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """``memo[key] = value``, emptying ``memo`` first when it holds ``MEMO_SIZE`` entries."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


def layout(input: Any, target: Any, family: str) -> tuple[int, bool, torch.dtype]:
    """``(class dim, indices, compute dtype)`` of checked ``input`` and ``target`` for ``family``.

    ``indices``: ``target`` holds class indices (for the sigmoid family only with the
    input's shape without the class dimension; otherwise they are 0/1 targets of
    its shape). Raises as ``logits``, ``holds_indices``, ``index_shape`` and
    ``dense_shape`` do. Plain tensors outside ``torch.compile`` (whose shapes may be
    symbolic) are memoised by shape and dtype.
    """
    key = None
    if type(input) is Tensor and type(target) is Tensor and not torch.compiler.is_compiling():
        key = (input.shape, input.dtype, target.shape, target.dtype, family)
        known = _LAYOUTS.get(key)
        if known is not None:
            return known
    dim = logits(input)
    indices = holds_indices(target)
    if family == "sigmoid":
        indices = indices and target.dim() == input.dim() - 1
    if indices:
        index_shape(input, target, dim)
    elif family == "sigmoid":
        dense_shape(input, target, "target")
    else:
        dense_shape(input, target)
    checked = (dim, indices, compute_dtype(input.dtype))
    if key is not None:
        remember(_LAYOUTS, key, checked)
    return checked


def on_host(tensor: Tensor) -> bool:
    """Whether ``tensor``'s values may be read: eager, real CPU data (no device sync), not being transformed."""
    return tensor.device.type == "cpu" and eager(tensor)


def bad_index_error(target: Tensor, num_classes: int, ignore_index: int | None) -> ValueError | None:
    """Core's ``ValueError`` naming the first class index outside ``[0, C)`` that is not ``ignore_index``.

    Reads values only on the host (``on_host``); ``None`` elsewhere, and when every index is valid.
    """
    if not (on_host(target) and not target.is_floating_point()):
        return None
    bad = (target < 0) | (target >= num_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    values = target[bad]
    return class_index_error(values[0].item(), num_classes, ignore_index) if values.numel() else None


def explain_index_error(error: Exception, target: Tensor, num_classes: int, ignore_index: int | None) -> Exception:
    """After a kernel's bounds error: core's ``ValueError`` naming the first bad index, else ``error`` itself.

    Runs only on the error path (never in the hot path) and only reads values on the host.
    """
    return bad_index_error(target, num_classes, ignore_index) or error


def unit_interval(target: Tensor) -> bool:
    """Raise core's error for host targets outside ``[0, 1]`` (or NaN); return whether values were checked."""
    if not on_host(target):
        return False
    if target.numel():
        check_target_range(*torch.stack(torch.aminmax(target)).tolist())
    return True
