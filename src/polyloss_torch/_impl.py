"""The PolyLoss maths for torch tensors, on validated arguments and a validated ``PolySpec``.

Three paths: softmax with class indices, softmax with dense targets, sigmoid.
The polynomial, the fractional-gamma rule, smoothing and alpha all come from
``polyloss_core.series``; this module supplies the torch cross-entropies, the
gathers and the reductions (torch's ``mean`` semantics). ``epsilon``, when
given, replaces ``eps_1`` of the spec (the Poly-1 functions pass theirs here,
so a spec need not be built per value).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polyloss_core import PolySpec, series

from ._autograd import DensePoly1, SigmoidPoly1Focal, TargetCrossEntropy, branches_on_host, eager
from ._ops import OPS

# Below this many logits a custom Function's fixed cost (ctx, saved tensors, its own graph node)
# outweighs the passes it saves, so small heads take the plain composition. A speed choice only.
_SMALL = 1 << 15


def _eps(spec: PolySpec, epsilon: Any) -> tuple[Any, ...]:
    return spec.epsilons if epsilon is None else (epsilon, *spec.epsilons[1:])


def _is_cross_entropy(spec: PolySpec, epsilon: Any) -> bool:
    # Spelled out rather than spec.is_cross_entropy: torch.compile does not read dataclass properties.
    return spec.gamma == 0.0 and spec.alpha is None and not any(_eps(spec, epsilon))  # Python floats


def _class_view(t: Tensor, ndim: int, dim: int) -> Tensor:
    return t.view([-1 if d == dim else 1 for d in range(ndim)])


def class_scale(spec: PolySpec, weight: Tensor | None, like: Tensor) -> tuple[float, Tensor | None]:
    """``spec.alpha`` and torch's ``weight`` as a scalar and an optional per-class tensor (``like``'s dtype, device)."""
    scalar, per_class = series.alpha_parts(spec)
    if per_class is not None:
        alpha = torch.tensor(per_class, dtype=like.dtype, device=like.device)
        weight = alpha if weight is None else weight * alpha
    return scalar, weight


def _reduce(loss: Tensor, reduction: str, denominator: Tensor | None = None) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if denominator is None else loss.sum() / denominator


def _at_target(per_class: Tensor, safe: Tensor) -> Tensor:
    return per_class.index_select(0, safe.reshape(-1)).view(safe.shape)


def smoothed(at_target: Tensor, class_sum: Tensor, spec: PolySpec, num_classes: int) -> Tensor:
    """Core's decomposition of class-index smoothing: ``(1 - s)`` at the target plus ``s / C`` of the class sum."""
    keep, spread = series.smoothing_weights(spec, num_classes)
    return torch.add(keep * at_target, class_sum, alpha=spread)


def finish_indices(
    loss: Tensor,
    index: Tensor,
    ignore_index: int,
    reduction: str,
    weight: Tensor | None,
    *,
    scale: Tensor | None = None,
    scalar: float = 1.0,
    ignored: Tensor | None = None,
) -> Tensor:
    """Per-example loss (0 where ignored) to torch's result: the class scale at the target, ``scalar``, reduction.

    torch's ``"mean"`` divides by the summed ``weight`` of the non-ignored targets (their count
    without ``weight``); ``spec.alpha`` (``scale``, ``scalar``) scales the loss but is no normaliser.
    Every count stays on the device; ``count_nonzero`` reads a bool mask directly (a sum would
    first copy it to int64).
    """
    mean = reduction == "mean"
    safe = None
    if scale is not None or (mean and weight is not None):
        ignored = index == ignore_index if ignored is None else ignored
        safe = index.masked_fill(ignored, 0)
    if scale is not None:
        loss = loss * _at_target(scale, safe)  # type: ignore[arg-type]  # set with scale
    if scalar != 1.0:
        loss = loss * scalar
    if not mean:
        return _reduce(loss, reduction)
    if weight is not None:
        return loss.sum() / _at_target(weight, safe).masked_fill(ignored, 0.0).sum()  # type: ignore[arg-type]
    if ignored is None:
        return loss.sum() / torch.count_nonzero(index != ignore_index)
    return loss.sum() / (ignored.numel() - torch.count_nonzero(ignored))


def softmax_indices(
    z: Tensor,
    index: Tensor,
    spec: PolySpec,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    dim: int,
    epsilon: Any = None,
) -> Tensor:
    """Softmax family, int64 class indices ``index`` (no value checks: bad ones fail in the kernels)."""
    if _is_cross_entropy(spec, epsilon):
        return F.cross_entropy(
            z,
            index,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=spec.label_smoothing,
        )
    scalar, per_class = series.alpha_parts(spec)
    if z.numel() < _SMALL and per_class is None and series.is_poly1(spec) and not spec.label_smoothing:
        # Small heads, where the number of kernels (and of Python steps) is the cost: minus the
        # per-class loss (core's poly1_of_log_p, one F.elu over log p), which nll_loss picks at the
        # target with torch's ignore_index, weight and weighted mean in one kernel (no per-class alpha).
        negated = series.poly1_of_log_p(z.log_softmax(dim), spec, OPS, epsilon=epsilon)
        loss = F.nll_loss(negated, index, weight=weight, ignore_index=ignore_index, reduction=reduction)
        return loss if scalar == 1.0 else loss * scalar
    num_classes = z.shape[dim]
    scalar, scale = class_scale(spec, weight, z)
    ignored: Tensor | None = None
    if not spec.label_smoothing:
        # Hard labels: every member is a function of the cross-entropy c and x = 1 - p_t (SPEC section
        # 4); both are 0 where ignored, and so is every member's loss. The size test comes first: it
        # is the cheap one, and small heads take the plain composition.
        if z.numel() >= _SMALL and eager(z):
            c, x, _, ignored = TargetCrossEntropy.apply(z, index, ignore_index, dim)
        else:
            c = F.cross_entropy(z, index, ignore_index=ignore_index, reduction="none")
            x = -torch.expm1(-c)
        loss = series.loss_from_ce(c, x, spec, OPS, epsilon=epsilon)
    else:
        # (1 - s) * hard-label loss + (s / C) * sum over classes (core's decomposition, no one-hot).
        ignored = index == ignore_index
        safe = index.masked_fill(ignored, 0).unsqueeze(dim)
        log_p = F.log_softmax(z, dim)
        if series.is_poly1(spec) and scale is None:
            c = -log_p.gather(dim, safe).squeeze(dim)
            at_target = series.loss_from_ce(c, -torch.expm1(-c), spec, OPS, epsilon=epsilon)
            class_sum = series.poly1_class_sum(-log_p.sum(dim), spec, num_classes, epsilon=epsilon)
        else:
            per_class = series.loss_from_ce(-log_p, -torch.expm1(log_p), spec, OPS, epsilon=epsilon)
            if scale is not None:
                per_class = per_class * _class_view(scale, z.dim(), dim)
                scale = None  # applied per class
            at_target = per_class.gather(dim, safe).squeeze(dim)
            class_sum = per_class.sum(dim)
        loss = smoothed(at_target, class_sum, spec, num_classes).masked_fill(ignored, 0.0)
    return finish_indices(loss, index, ignore_index, reduction, weight, scale=scale, scalar=scalar, ignored=ignored)


# The bits of 1.0 per float dtype, and the integer dtype of the same width: one-hot tests on the bits
# are exact comparisons, and torch's integer reductions run faster than its float ones on a CPU.
_ONE_BITS = {torch.float32: (torch.int32, 0x3F800000), torch.float64: (torch.int64, 0x3FF0000000000000)}


def one_hot_index(target: Tensor, dim: int) -> Tensor | None:
    """The class indices of ``target`` if every row is exactly one-hot, else ``None``. A speed choice.

    Read on the bits: every row's largest bit pattern is that of 1.0 (so no entry is above 1 or
    NaN, and each row holds a 1) and the tensor holds as many non-zero bit patterns as rows, so
    every other entry is +0.0. Exact for any values. It reads values, so callers use it only for
    tensors in host memory (``branches_on_host``); soft rows usually stop after reading the first
    row (a few microseconds), one-hot rows cost two reductions and one matrix-vector product.
    Small heads (below 32 768 numbers) are not tested: there the reads cost more than they save.
    """
    num_classes = target.shape[dim]
    if num_classes >= 1 << 24 or target.dtype not in _ONE_BITS or not target.numel():
        return None  # the indices below are exact in float32 up to 2**24
    rows = target.numel() // num_classes
    int_dtype, one = _ONE_BITS[target.dtype]
    bits = target.view(int_dtype)
    if not bool(bits.movedim(dim, -1)[(0,) * (target.dim() - 1)].amax() == one):  # soft rows stop here
        return None
    if not bool((bits.amax(dim) == one).all()) or int(torch.count_nonzero(bits)) != rows:
        return None
    classes = torch.arange(num_classes, dtype=target.dtype, device=target.device)
    if target.stride(dim) == 1:  # rows of contiguous classes (also channels-last maps): one product
        index = target.movedim(dim, -1).reshape(rows, num_classes) @ classes
    else:  # (outer, C, inner) blocks, e.g. (N, C, H, W) maps: a product per block, no copy
        index = classes @ target.reshape(math.prod(target.shape[:dim]), num_classes, -1)
    return index.reshape(target.shape[:dim] + target.shape[dim + 1 :]).long()


def softmax_dense(
    z: Tensor, target: Tensor, spec: PolySpec, weight: Tensor | None, reduction: str, dim: int, epsilon: Any = None
) -> Tensor:
    """Softmax family, dense targets (probabilities, one-hot floats, mixup, unnormalised)."""
    if _is_cross_entropy(spec, epsilon):
        return F.cross_entropy(z, target, weight=weight, reduction=reduction, label_smoothing=spec.label_smoothing)
    if z.numel() >= _SMALL and branches_on_host(z) and eager(z) and not target.requires_grad:
        index = one_hot_index(target, dim)
        if index is not None:  # the same losses, from the class-index kernels
            loss = softmax_indices(z, index, spec, weight, -1, "none", dim, epsilon)
            return _reduce(loss, reduction)
    q = series.smooth_targets(target, spec, z.shape[dim])
    scalar, scale = class_scale(spec, weight, z)
    small = z.numel() < _SMALL
    if series.is_poly1(spec) and (small or (eager(z) and not q.requires_grad)):
        r = q if scale is None else q * _class_view(scale, z.dim(), dim)
        if small:  # kernel count is the cost: minus the per-class loss (as for class indices), times r
            negated = series.poly1_of_log_p(z.log_softmax(dim), spec, OPS, epsilon=epsilon)
            return _class_sum(r * negated, reduction, dim, -scalar)
        loss, _ = DensePoly1.apply(z, r, _eps(spec, epsilon)[0], dim)
        # torch divides by the number of examples for probability targets, weighted or not.
        return _reduce(loss if scalar == 1.0 else loss * scalar, reduction)
    log_p = F.log_softmax(z, dim)
    per_class = series.loss_from_ce(-log_p, -torch.expm1(log_p), spec, OPS, epsilon=epsilon)
    if scale is not None:
        per_class = per_class * _class_view(scale, z.dim(), dim)
    return _class_sum(q * per_class, reduction, dim, scalar)


def _class_sum(products: Tensor, reduction: str, dim: int, scalar: float) -> Tensor:
    """``scalar * sum_c products`` per example, reduced as torch reduces probability targets.

    The mean divides by the number of examples, ``numel / C`` (NaN when there is none or no
    class); "mean" and "sum" take one sum over everything, one kernel fewer than a sum per example
    and its reduction (what small heads pay for).
    """
    if reduction == "none":
        loss = products.sum(dim)
        return loss if scalar == 1.0 else loss.mul_(scalar)
    classes = products.shape[dim]
    examples = (products.numel() // classes if classes else 0) if reduction == "mean" else 1
    factor = scalar / examples if examples else math.nan
    return products.sum() if factor == 1.0 else products.sum().mul_(factor)


def sigmoid(
    z: Tensor,
    target: Tensor,
    spec: PolySpec,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    dim: int,
    *,
    indices: bool,
    checked: bool,
    epsilon: Any = None,
) -> Tensor:
    """Sigmoid family. ``indices``: class indices meaning one-hot along ``dim``. ``checked``: the
    targets' values were verified on the host; otherwise elements with targets outside ``[0, 1]``
    get NaN (SPEC section 6), without reading anything back."""
    ignored = None
    if indices:
        ignored = target == ignore_index
        safe = target.masked_fill(ignored, 0)
        t = torch.zeros_like(z).scatter_(dim, safe.unsqueeze(dim), 1.0)
    else:
        t = target.to(z.dtype)
    hard = (indices or not target.is_floating_point()) and not spec.label_smoothing
    t = series.smooth_binary_targets(t, spec)

    def composed(z: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")

        # 0/1 targets: p_t = exp(-BCE) exactly; otherwise core's cancellation-free form from the logits.
        def one_minus_p_t() -> Tensor:
            return -torch.expm1(-bce) if hard else series.sigmoid_one_minus_p_t(z, t, OPS)

        return series.sigmoid_loss(bce, t, spec, OPS, one_minus_p_t, epsilon=epsilon)

    eps = _eps(spec, epsilon)
    if len(eps) == 1 and spec.gamma == int(spec.gamma) and eager(z) and not t.requires_grad:
        loss = SigmoidPoly1Focal.apply(z, t, spec, eps[0], composed)
    else:
        loss = composed(z)
    if weight is not None:
        loss = loss * _class_view(weight, z.dim(), dim)
    if not (indices or checked):
        loss = torch.where((target >= 0) & (target <= 1), loss, torch.nan)
    if ignored is None:
        return _reduce(loss, reduction)
    loss = loss.masked_fill(ignored.unsqueeze(dim), 0.0)
    return _reduce(loss, reduction, (ignored.numel() - torch.count_nonzero(ignored)) * z.shape[dim])
