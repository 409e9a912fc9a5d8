"""Functional PolyLoss for PyTorch: ``poly_loss``, ``poly1_cross_entropy`` and ``poly1_focal_loss``.

Everything follows ``torch.nn.functional`` conventions: arguments are
``(input, target)``, classes sit on dimension 1 of ``(N, C, d1, ..., dK)``
inputs (dimension 0 of an unbatched ``(C,)`` input) and ``reduction`` is one of
``"none"``, ``"mean"`` or ``"sum"``. The polynomial itself is evaluated by
``polyloss_core.series``, so every framework adapter computes the same
numbers.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from polyloss_core import PolySpec, check_epsilon, check_family
from polyloss_core.series import focal_factor, poly_loss_from_log_prob, polynomial_term

from . import _tensor_parallel
from ._target_ce import target_cross_entropy, transforming

__all__ = ["poly1_cross_entropy", "poly1_focal_loss", "poly_loss"]

REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")


# --------------------------------------------------------------------------- argument checks
def _check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def _check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise TypeError(f"epsilon must be a real number, got {epsilon!r} of type {type(epsilon).__name__}")
    return check_epsilon(float(epsilon))


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def _check_ignore_index(ignore_index: Any) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r} of type {type(ignore_index).__name__}")
    return ignore_index


def _values_checkable(tensor: Tensor) -> bool:
    """Whether reading values back to the host is possible (eager, real data, non-empty)."""
    return tensor.numel() > 0 and tensor.device.type != "meta" and not transforming(tensor)


def _check_input(input: Any) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must have a floating point dtype, got {input.dtype}")
    if input.dim() == 0:
        raise ValueError("input must have shape (C,) or (N, C, d1, ..., dK), got a 0-dimensional tensor")


def _check_target_type(target: Any) -> None:
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(f"target must hold integer class indices or floating point targets, got dtype {target.dtype}")


def _check_class_indices(target: Tensor, num_classes: int, ignore_index: int) -> bool | None:
    """Raise for a non-ignored class index outside ``[0, num_classes)``.

    Returns whether ``target`` may contain ``ignore_index``: ``False`` when the
    values prove it does not, ``None`` when the values could not be read
    (under ``torch.compile``, on the meta device).
    """
    if not _values_checkable(target):
        return None if target.numel() else False
    low, high = (v.item() for v in torch.aminmax(target))
    if low >= 0 and high < num_classes:
        return 0 <= ignore_index < num_classes and low <= ignore_index <= high
    bad = target[(target != ignore_index) & ((target < 0) | (target >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"target contains class index {int(bad.reshape(-1)[0].item())}, outside the valid range "
            f"[0, {num_classes}) for an input with {num_classes} classes (ignore_index={ignore_index})"
        )
    return True


def _check_weight(weight: Any, num_classes: int, dtype: torch.dtype) -> Tensor | None:
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must have a floating point dtype, got {weight.dtype}")
    if weight.shape != (num_classes,):
        raise ValueError(f"weight must have shape ({num_classes},), one entry per class, got {tuple(weight.shape)}")
    return weight.to(dtype=dtype)  # like torch, no silent copy to another device


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float16, bfloat16 (and any other float) are computed in float32.

    The loss is returned in this dtype, as under ``torch.autocast``, which runs
    ``cross_entropy`` and ``binary_cross_entropy_with_logits`` in float32: a
    half-precision loss could not even hold ``CE = 1.2e5`` for logits of 6e4.
    """
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# --------------------------------------------------------------------------- shared maths
def _safe_one_minus_p(one_minus_p: Tensor, spec: PolySpec) -> Tensor:
    """Keep ``1 - p`` off zero before a power ``x^g`` with ``0 < g < 1``, whose slope is infinite at 0.

    Below the dtype's ``tiny`` the true value and gradient of every term are 0
    to working precision; the clamp makes autograd return that 0 instead of
    ``inf * 0 = nan``.
    """
    if 0.0 < spec.gamma < 1.0:
        return one_minus_p.clamp_min(torch.finfo(one_minus_p.dtype).tiny)
    return one_minus_p


def _loss_from_cross_entropy(ce: Tensor, one_minus_p: Tensor, spec: PolySpec) -> Tensor:
    """``ce (1 - p)^g + sum_j eps_j (1 - p)^(j + g)`` from a cross-entropy ``ce`` and ``1 - p``.

    For a hard label ``ce = -log p`` and ``1 - p = -expm1(-ce)`` exactly (SPEC
    section 4), so the whole polynomial costs a few elementwise operations on
    per-example tensors on top of the cross-entropy; this is then
    ``polyloss_core.series.poly_loss_from_log_prob`` with ``log p = -ce``,
    written without negating ``ce`` twice. For soft sigmoid targets ``ce`` is
    ``BCE(z, t)`` and ``1 - p`` is ``1 - p_t``, as SPEC section 3 defines.
    """
    if spec.gamma == 0.0 and len(spec.epsilons) == 1 and spec.epsilons[0] != 0.0:
        # Poly-1, ``ce + eps (1 - p)``, as one multiply-add kernel instead of a multiply and an add:
        # right after the cross-entropy has streamed the logits through the caches, every extra
        # small kernel (and its backward node) costs several times what it does in a tight loop.
        return torch.add(ce, one_minus_p, alpha=spec.epsilons[0])
    one_minus_p = _safe_one_minus_p(one_minus_p, spec)
    factor = focal_factor(one_minus_p, spec.gamma)
    base = ce if isinstance(factor, float) else ce * factor
    extra = polynomial_term(one_minus_p, spec)
    return base if isinstance(extra, float) else base + extra


def _reduce(loss: Tensor, reduction: str, denominator: Tensor | float | None) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if denominator is None:
        return loss.mean()
    return loss.sum() / denominator


def _per_target(per_class: Tensor, index: Tensor) -> Tensor:
    """``per_class[index]`` for an index tensor of any shape, 0-d included."""
    return per_class.index_select(0, index.reshape(-1)).reshape(index.shape)


def _class_shape(num_dims: int, class_dim: int) -> list[int]:
    return [-1 if d == class_dim else 1 for d in range(num_dims)]


def _alpha_parts(spec: PolySpec, class_weight: Tensor | None, like: Tensor) -> tuple[float, Tensor | None]:
    """``spec.alpha`` and ``weight`` as a scalar factor and an optional per-class factor."""
    if isinstance(spec.alpha, tuple):
        alpha = torch.tensor(spec.alpha, dtype=like.dtype, device=like.device)
        return 1.0, alpha if class_weight is None else class_weight * alpha
    return (1.0 if spec.alpha is None else float(spec.alpha)), class_weight


# --------------------------------------------------------------------------- softmax family
def _per_class_loss(z: Tensor, spec: PolySpec, class_dim: int, scale: Tensor | None) -> Tensor:
    """``w_c l(p_c)`` for every class, from ``log_softmax`` (soft targets, label smoothing)."""
    log_p = F.log_softmax(z, dim=class_dim)
    per_class = poly_loss_from_log_prob(log_p, _safe_one_minus_p(-torch.expm1(log_p), spec), spec)
    if scale is not None:
        per_class = per_class * scale.view(_class_shape(z.dim(), class_dim))
    return per_class


def _smoothed_poly1(z: Tensor, index: Tensor, spec: PolySpec, class_dim: int) -> Tensor:
    """Poly-1 with label smoothing and class indices, from one ``log_softmax`` and no per-class polynomial.

    With ``q' = (1 - s) onehot(y) + s / C`` the loss is ``(1 - s) l(p_y) + (s / C) sum_c l(p_c)``,
    and for Poly-1 ``sum_c l(p_c) = sum_c -log p_c + eps sum_c (1 - p_c) = sum_c -log p_c + eps (C - 1)``
    because the probabilities sum to 1. Only for ``gamma = 0``, one epsilon and no per-class weights.
    """
    num_classes = z.shape[class_dim]
    smoothing, epsilon = spec.label_smoothing, spec.epsilons[0]
    log_p = F.log_softmax(z, dim=class_dim)
    ce = -log_p.gather(class_dim, index.unsqueeze(class_dim)).squeeze(class_dim)
    at_target = torch.add(ce, -torch.expm1(-ce), alpha=epsilon)
    uniform = log_p.sum(dim=class_dim)  # -sum_c -log p_c
    constant = smoothing * epsilon * (num_classes - 1) / num_classes
    return torch.add((1.0 - smoothing) * at_target, uniform, alpha=-smoothing / num_classes) + constant


def _index_target_loss(
    z: Tensor,
    indices: Tensor,
    safe_indices: Tensor,
    ignored: Tensor | None,
    spec: PolySpec,
    scale: Tensor | None,
    ignore_index: int,
    class_dim: int,
) -> Tensor:
    """Per-example loss for class indices; ``ignored`` marks ``ignore_index`` entries (``None``: there are none)."""
    smoothing = spec.label_smoothing
    if not smoothing:
        # Hard labels: every member of the family is a function of torch's fused CE (SPEC section 4).
        keep = None if ignored is None else ~ignored
        ce, one_minus_p = target_cross_entropy(z, indices, safe_indices, keep, ignore_index, class_dim)
        per_example = _loss_from_cross_entropy(ce, one_minus_p, spec)
        if scale is not None:
            # Ignored entries are exactly 0 already (CE is 0 there), whatever weight multiplies them.
            per_example = per_example * _per_target(scale, safe_indices)
        return per_example
    if scale is None and spec.gamma == 0.0 and len(spec.epsilons) == 1:
        per_example = _smoothed_poly1(z, safe_indices, spec, class_dim)
    else:
        num_classes = z.shape[class_dim]
        per_class = _per_class_loss(z, spec, class_dim, scale)
        picked = per_class.gather(class_dim, safe_indices.unsqueeze(class_dim)).squeeze(class_dim)
        per_example = (1.0 - smoothing) * picked + (smoothing / num_classes) * per_class.sum(dim=class_dim)
    return per_example if ignored is None else per_example.masked_fill(ignored, 0.0)


def _softmax_loss(
    input: Tensor, target: Tensor, spec: PolySpec, weight: Any, ignore_index: int, reduction: str
) -> Tensor:
    if _tensor_parallel.is_dtensor(input):  # class-sharded logits under loss_parallel(): no gather
        return _tensor_parallel.softmax_loss(input, target, spec, weight, ignore_index, reduction)
    class_dim = 0 if input.dim() == 1 else 1
    num_classes = input.shape[class_dim]
    check_family(spec, "softmax", num_classes)
    dtype = _compute_dtype(input.dtype)
    z = input if input.dtype == dtype else input.to(dtype)
    class_weight = _check_weight(weight, num_classes, z.dtype)
    smoothing = spec.label_smoothing
    # spec.is_cross_entropy, spelled out: torch.compile cannot read properties of frozen dataclasses.
    plain_cross_entropy = spec.gamma == 0.0 and not any(spec.epsilons) and spec.alpha is None

    if target.is_floating_point():
        if target.shape != input.shape:
            raise ValueError(
                f"floating point target (class probabilities) must have the input's shape {tuple(input.shape)}, "
                f"got {tuple(target.shape)}"
            )
        q = target.to(z.dtype)
        if plain_cross_entropy:
            # torch's own kernel, bit for bit.
            return F.cross_entropy(z, q, weight=class_weight, reduction=reduction, label_smoothing=smoothing)
        alpha_scalar, scale = _alpha_parts(spec, class_weight, z)
        # Even one-hot rows take the per-class path: telling them apart from soft ones means reading
        # the targets (a max, a sum and an index per row), which on CPU costs about as much as the
        # class-index path saves. docs/benchmarks.md tells users with one-hot targets to pass indices.
        if smoothing:
            q = (1.0 - smoothing) * q + smoothing / num_classes
        per_example = (q * _per_class_loss(z, spec, class_dim, scale)).sum(dim=class_dim)
        # torch divides by the number of examples for probability targets, weighted or not.
        denominator: Tensor | None = None
    else:
        expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"class-index target must have shape {expected} (the input's shape {tuple(input.shape)} "
                f"without the class dimension {class_dim}), got {tuple(target.shape)}"
            )
        indices = target if target.dtype == torch.int64 else target.long()
        may_ignore = _check_class_indices(indices, num_classes, ignore_index)
        if plain_cross_entropy:
            return F.cross_entropy(
                z,
                indices,
                weight=class_weight,
                ignore_index=ignore_index,
                reduction=reduction,
                label_smoothing=smoothing,
            )
        alpha_scalar, scale = _alpha_parts(spec, class_weight, z)
        ignored = None if may_ignore is False else indices == ignore_index
        safe_indices = indices if ignored is None else indices.masked_fill(ignored, 0)
        per_example = _index_target_loss(z, indices, safe_indices, ignored, spec, scale, ignore_index, class_dim)
        # torch's weighted mean: divide by the summed `weight` of the non-ignored targets.
        # spec.alpha scales the loss but, like the focal loss' alpha, is no normaliser.
        denominator = None
        if reduction == "mean" and class_weight is not None:
            target_weight = _per_target(class_weight, safe_indices)
            if ignored is not None:
                target_weight = target_weight.masked_fill(ignored, 0.0)
            denominator = target_weight.sum()
        elif reduction == "mean" and ignored is not None:
            denominator = (~ignored).sum()

    if alpha_scalar != 1.0:
        per_example = per_example * alpha_scalar
    return _reduce(per_example, reduction, denominator)


# --------------------------------------------------------------------------- sigmoid family
def _sigmoid_loss(
    input: Tensor, target: Tensor, spec: PolySpec, weight: Any, ignore_index: int, reduction: str
) -> Tensor:
    check_family(spec, "sigmoid")
    class_dim = 0 if input.dim() == 1 else 1
    num_classes = input.shape[class_dim]
    z = input.to(_compute_dtype(input.dtype))
    class_weight = _check_weight(weight, num_classes, z.dtype)

    ignored: Tensor | None = None
    if not target.is_floating_point() and target.dim() == input.dim() - 1:
        expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"class-index target must have shape {expected} (the input's shape {tuple(input.shape)} "
                f"without the class dimension {class_dim}), got {tuple(target.shape)}"
            )
        indices = target if target.dtype == torch.int64 else target.long()
        if _check_class_indices(indices, num_classes, ignore_index) is not False:
            ignored = indices == ignore_index
            indices = indices.masked_fill(ignored, 0)
        t = torch.zeros_like(z).scatter_(class_dim, indices.unsqueeze(class_dim), 1.0)
        hard = True
    else:
        if target.shape != input.shape:
            raise ValueError(
                f"target must have the input's shape {tuple(input.shape)} (or, for integer class indices, "
                f"that shape without the class dimension {class_dim}), got {tuple(target.shape)}"
            )
        hard = not target.is_floating_point()
        if _values_checkable(target):
            low, high = (v.item() for v in torch.aminmax(target))
            if not (low >= 0 and high <= 1):  # also raises for nan
                raise ValueError(f"target values must lie in [0, 1], got values in [{low}, {high}]")
        t = target.to(z.dtype)

    smoothing = spec.label_smoothing
    if smoothing:
        t = (1.0 - smoothing) * t + 0.5 * smoothing
        hard = False
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    # 0/1 targets: p_t = exp(-BCE) exactly. Otherwise 1 - p_t = t (1 - p) + (1 - t) p, a sum of
    # non-negative terms, accurate in every regime.
    one_minus_pt = -torch.expm1(-bce) if hard else t * torch.sigmoid(-z) + (1.0 - t) * torch.sigmoid(z)
    loss = _loss_from_cross_entropy(bce, one_minus_pt, spec)
    if spec.alpha is not None:
        alpha = cast(float, spec.alpha)  # check_family guarantees one number in [0, 1]
        loss = loss * ((1.0 - alpha) + (2.0 * alpha - 1.0) * t)
    if class_weight is not None:
        loss = loss * class_weight.view(_class_shape(z.dim(), class_dim))

    denominator: Tensor | None = None
    if ignored is not None:
        loss = loss.masked_fill(ignored.unsqueeze(class_dim), 0.0)
        denominator = (~ignored).sum() * num_classes
    return _reduce(loss, reduction, denominator)


# --------------------------------------------------------------------------- public functions
def poly_loss(
    input: Tensor,
    target: Tensor,
    spec: PolySpec,
    *,
    family: str = "softmax",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Any member of the PolyLoss family described by a ``PolySpec``.

    With ``x = 1 - p`` the loss of one probability ``p`` is

    $$
    l(p) = -x^{\gamma} \log p + \sum_{j=1}^{N} \epsilon_j\, x^{j + \gamma}
    $$

    (``spec.epsilons`` are the \(\epsilon_j\), ``spec.gamma`` is \(\gamma\)).

    * ``family="softmax"``: ``p = softmax(input)`` over dimension 1 and the loss of
      one example is \(\sum_c w_c q'_c\, l(p_c)\) with the smoothed target
      \(q' = (1 - s) q + s / C\) and class weight \(w_c\) = ``weight[c]``
      times ``spec.alpha`` (a number or one entry per class). For a class-index
      target this is \(w_y\, l(p_y)\).
    * ``family="sigmoid"``: every element is an independent binary decision with
      ``p = sigmoid(input)``, target \(t' = (1 - s) t + s / 2\),
      \(p_t = t' p + (1 - t')(1 - p)\) and
      \(\alpha_t = \alpha t' + (1 - \alpha)(1 - t')\):
      \(\alpha_t \left(\mathrm{BCE}(z, t')\, x_t^{\gamma} + \sum_j \epsilon_j x_t^{j+\gamma}\right)\)
      with \(x_t = 1 - p_t\), times ``weight[c]`` along dimension 1.
      ``alpha_t`` multiplies the polynomial term too; the paper's released code
      leaves that term unweighted.

    Args:
        input: logits of shape ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dK)``;
            any floating dtype (float16 and bfloat16 are computed and returned in
            float32, as ``torch.autocast`` does for losses).
        target: integer class indices in ``[0, C)`` (or ``ignore_index``) of the
            input's shape without dimension 1, or floating targets of the input's
            shape: class probabilities for the softmax family, per-element targets
            in ``[0, 1]`` for the sigmoid family. For the sigmoid family integer
            class indices mean a one-hot target along dimension 1.
        spec: the loss: epsilons, gamma, alpha and label smoothing.
        family: ``"softmax"`` (default; one class per example) or ``"sigmoid"``
            (independent binary decisions, e.g. detection or multi-label).
        weight: optional float tensor of shape ``(C,)``, a weight per class that
            multiplies the whole loss of that class, polynomial term included.
            Default ``None`` (all ones).
        ignore_index: class index whose examples contribute no loss and no
            gradient and are left out of the ``"mean"``. Only used with class-index
            targets. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``. For the
            softmax family with class-index targets, ``"mean"`` divides by the
            summed ``weight`` of the non-ignored targets (by their count without
            ``weight``), as ``torch.nn.functional.cross_entropy`` does; with
            probability targets it divides by the number of examples. For the
            sigmoid family it divides by the number of (non-ignored) elements.
            ``spec.alpha`` never enters the denominator.

    Shape:
        - input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` with ``K >= 1``.
        - target: class indices ``()``, ``(N)`` or ``(N, d1, ..., dK)``; or floating
          targets with the input's shape.
        - output: a scalar for ``"mean"`` and ``"sum"``. For ``"none"``: softmax,
          the input's shape without dimension 1; sigmoid, the input's shape.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` of the wrong type or dtype,
            or ``spec`` not a ``PolySpec``.
        ValueError: an unknown ``family`` or ``reduction``, mismatched shapes, a
            class index outside ``[0, C)`` that is not ``ignore_index``, sigmoid
            targets outside ``[0, 1]``, or an ``alpha`` that does not fit the family.

    Note:
        Class indices (and sigmoid targets) are checked by reading their minimum
        and maximum back to the host, one synchronisation per call on an
        accelerator. Under ``torch.compile`` and ``torch.func`` transforms the
        check is skipped; an out-of-range index then fails in the kernel's own
        bounds check (a ``RuntimeError`` or ``IndexError``), never silently.

    Examples:
        >>> import torch
        >>> from polyloss_core import PolySpec
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> poly_loss(logits, target, PolySpec.poly_n(1.0, 0.5), reduction="none")
        tensor([0.4787, 0.2188])
        >>> poly_loss(logits, target, PolySpec.focal(gamma=2.0), family="sigmoid").shape
        torch.Size([])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    check_family(spec, family)
    _check_reduction(reduction)
    _check_ignore_index(ignore_index)
    _check_input(input)
    _check_target_type(target)
    if family == "softmax":
        return _softmax_loss(input, target, spec, weight, ignore_index, reduction)
    return _sigmoid_loss(input, target, spec, weight, ignore_index, reduction)


@functools.lru_cache(maxsize=256)
def _cached_poly1_spec(epsilon: float, label_smoothing: float) -> PolySpec:
    return PolySpec.poly1(epsilon, label_smoothing=label_smoothing)


@torch.compiler.assume_constant_result
def _poly1_spec(epsilon: float, label_smoothing: float) -> PolySpec:
    # PolySpec validation runs NumPy; the cache keeps it off the training step and
    # assume_constant_result keeps it out of torch.compile graphs.
    return _cached_poly1_spec(epsilon, label_smoothing)


def _focal_alpha(alpha: Any) -> float | None:
    """torchvision's ``alpha``: ``None`` or a negative number disables the balancing."""
    if alpha is None:
        return None
    value = _check_real("alpha", alpha)
    if value > 1.0:
        raise ValueError(f"alpha must be in [0, 1] (or None / negative to disable), got {alpha!r}")
    return None if value < 0 else value


@functools.lru_cache(maxsize=256)
def _cached_poly1_focal_spec(epsilon: float, gamma: float, alpha: float | None) -> PolySpec:
    return PolySpec.poly1_focal(epsilon, gamma, alpha)


@torch.compiler.assume_constant_result
def _poly1_focal_spec(epsilon: float, gamma: float, alpha: float | None) -> PolySpec:
    return _cached_poly1_focal_spec(epsilon, gamma, alpha)


def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Poly-1 cross-entropy: cross-entropy plus ``epsilon * (1 - p_t)``.

    A drop-in replacement for ``torch.nn.functional.cross_entropy``. Per
    example, with class weights \(w\) and smoothed targets
    \(q' = (1 - s) q + s / C\),

    $$
    \ell = \sum_c w_c\, q'_c \left(-\log p_c + \epsilon\,(1 - p_c)\right),
    \qquad p = \mathrm{softmax}(\text{input}),
    $$

    which for a class index ``y`` without smoothing is the paper's
    \(w_y\,(\mathrm{CE} + \epsilon (1 - p_y))\). With ``epsilon=0`` this *is*
    ``F.cross_entropy`` (same kernel) for every argument combination.

    The paper suggests trying ``epsilon`` around ``+2`` for ImageNet-style
    classification and ``-1`` for detection and segmentation; tune it per task.

    Args:
        input: logits, ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dK)``, any floating
            dtype (float16 and bfloat16 are computed and returned in float32, as
            ``torch.autocast`` does for losses).
        target: class indices in ``[0, C)`` (or ``ignore_index``) of shape ``()``,
            ``(N)`` or ``(N, d1, ..., dK)``; or class probabilities of the input's shape.
        epsilon: the coefficient added to the first polynomial term, ``>= -1``.
            Default ``1.0``.
        weight: optional float tensor of shape ``(C,)``; scales the whole loss of
            each class, polynomial term included. Default ``None``.
        ignore_index: target value that contributes nothing and is left out of
            the mean (class indices only). Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``: with
            class indices, divided by the summed ``weight`` of the non-ignored
            targets (their count without ``weight``); with probabilities, divided by
            the number of examples, exactly as ``F.cross_entropy``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.

    Shape:
        - input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` with ``K >= 1``.
        - target: ``()``, ``(N)`` or ``(N, d1, ..., dK)`` class indices, or the
          input's shape for probabilities.
        - output: a scalar for ``"mean"`` and ``"sum"``; the input's shape without
          dimension 1 for ``"none"``.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``epsilon`` not a number, or tensors of the wrong dtype.
        ValueError: ``epsilon < -1``, ``label_smoothing`` outside ``[0, 1)``, an
            unknown ``reduction``, mismatched shapes, or a class index outside
            ``[0, C)`` that is not ``ignore_index``.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> poly1_cross_entropy(logits, target, epsilon=1.0)
        tensor(0.3346)
        >>> bool(poly1_cross_entropy(logits, target, epsilon=0.0) == F.cross_entropy(logits, target))
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (4).
    """
    spec = _poly1_spec(_check_epsilon(epsilon), _check_real("label_smoothing", label_smoothing))
    return poly_loss(input, target, spec, weight=weight, ignore_index=ignore_index, reduction=reduction)


def poly1_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    r"""Poly-1 sigmoid focal loss, with ``torchvision.ops.sigmoid_focal_loss`` conventions.

    Every element is an independent binary decision with ``p = sigmoid(input)``,
    \(p_t = t p + (1 - t)(1 - p)\) and
    \(\alpha_t = \alpha t + (1 - \alpha)(1 - t)\):

    $$
    \ell = \alpha_t \left(\mathrm{BCE}(z, t)\,(1 - p_t)^{\gamma}
    + \epsilon\,(1 - p_t)^{1 + \gamma}\right)
    $$

    With ``epsilon=0`` it equals torchvision's ``sigmoid_focal_loss``. Unlike the
    paper's released code, \(\alpha_t\) also weights the ``epsilon`` term, so
    positives and negatives are balanced the same way in both terms.

    Args:
        input: logits of any shape, e.g. ``(N, C)`` or ``(N, C, H, W)``.
        target: targets in ``[0, 1]`` of the input's shape (``1`` for the positive
            class), floating or integer; integer class indices of the input's shape
            without dimension 1 mean one-hot along dimension 1.
        epsilon: coefficient of \((1 - p_t)^{1+\gamma}\), ``>= -1``. Default ``1.0``;
            the paper uses ``-1`` for COCO detection.
        alpha: weight of positives in ``[0, 1]`` (negatives get ``1 - alpha``);
            ``None`` or a negative number disables the weighting. Default ``0.25``.
        gamma: focusing exponent, ``>= 0``. Default ``2.0``.
        reduction: ``"none"`` (default) | ``"mean"`` | ``"sum"``.

    Shape:
        - input: ``(*)``, any number of dimensions.
        - target: ``(*)``, the input's shape.
        - output: the input's shape for ``"none"``, otherwise a scalar.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``epsilon`` not a number, or tensors of the wrong dtype.
        ValueError: ``epsilon < -1``, ``alpha > 1``, ``gamma < 0``, an unknown
            ``reduction``, mismatched shapes, or targets outside ``[0, 1]``.

    Examples:
        >>> import torch
        >>> logits = torch.tensor([[3.0, -2.0], [0.0, 1.0]])
        >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> poly1_focal_loss(logits, target, epsilon=1.0, reduction="none")
        tensor([[5.3989e-05, 2.6230e-03],
                [2.2372e-01, 1.0528e-02]])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (5); focal loss:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    spec = _poly1_focal_spec(_check_epsilon(epsilon), _check_real("gamma", gamma), _focal_alpha(alpha))
    return poly_loss(input, target, spec, family="sigmoid", reduction=reduction)
