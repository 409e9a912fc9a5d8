r"""Fused linear head + PolyLoss for language-model vocabularies, without the logit matrix.

For ``N`` tokens and a ``V``-word vocabulary the logits ``hidden @ weight.T`` are
an ``N x V`` matrix (for 4096 tokens and 128,256 words, 2.1 GB in float32) and
a loss on them keeps one or two more copies for the backward. The functions
here compute the same loss and the same gradients for ``hidden``, ``weight``
and ``bias`` from chunks of ``chunk_size`` rows, so only one chunk of logits
exists at a time (the technique of Cut Cross-Entropy, Wijmans et al.,
arXiv:2411.09009, and Liger Kernel's fused linear cross-entropy, here for the
whole PolyLoss family).

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from polyloss_core import PolySpec, check_family, checks, poly1_spec
from polyloss_core.series import alpha_parts

from . import _validate as V
from ._fused_linear import FusedLinearPolyLoss, Plan

__all__ = ["LinearPoly1CrossEntropyLoss", "LinearPolyLoss", "linear_poly1_cross_entropy", "linear_poly_loss"]

#: Default size of one chunk of float32 logits (rows = this / (4 V)).
CHUNK_BYTES = 64 * 2**20


def _check_arrays(hidden: Any, weight: Any, target: Any, bias: Any) -> None:
    V.tensor("hidden", hidden, floating=True)
    V.tensor("weight", weight, floating=True)
    V.tensor("target", target)
    if hidden.dim() < 1:
        raise ValueError("hidden must have shape (..., D), got a 0-dimensional tensor")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise checks.shape_error(
            "weight", ("V", hidden.shape[-1]), weight.shape, "one row of hidden's size D per class"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got target.dtype={target.dtype}")
    if tuple(target.shape) != tuple(hidden.shape[:-1]):
        raise checks.shape_error("target", hidden.shape[:-1], target.shape, "hidden's shape without its last dimension")
    others = [("weight", weight)]
    if bias is not None:
        V.tensor("bias", bias, floating=True)
        if tuple(bias.shape) != (weight.shape[0],):
            raise checks.shape_error("bias", (weight.shape[0],), bias.shape, "one entry per class (weight's rows)")
        others.append(("bias", bias))
    for name, tensor in others:
        if tensor.dtype != hidden.dtype:
            raise TypeError(
                f"{name} must have hidden's dtype, got hidden.dtype={hidden.dtype} and {name}.dtype={tensor.dtype}"
            )
    for name, tensor in [*others, ("target", target)]:
        if tensor.device != hidden.device:
            raise ValueError(
                f"{name} must be on hidden's device, got hidden on {hidden.device} and {name} on {tensor.device}"
            )


def _check_chunk_size(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    rows = checks.check_int("chunk_size", chunk_size)
    if rows < 1:
        raise ValueError(f"chunk_size must be a positive number of rows (tokens), got chunk_size={rows}")
    return rows


def _linear_loss(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    spec: PolySpec,
    bias: Tensor | None,
    ignore_index: int,
    reduction: str,
    chunk_size: int | None,
) -> Tensor:
    """Validated arguments in, loss out."""
    num_classes = weight.shape[0]
    check_family(spec, "softmax", num_classes)
    out_shape = target.shape
    h = hidden.reshape(-1, hidden.shape[-1])
    y = target.reshape(-1).long()
    dtype = V.compute_dtype(hidden.dtype)
    keep = y != ignore_index
    rows_kept: Tensor | None = None
    # Labels are read only on the host (no device sync): checked, and ignored tokens dropped.
    if V.on_host(y) and y.numel():
        error = V.bad_index_error(y, num_classes, ignore_index)
        if error is not None:
            raise error
        kept = keep.nonzero().squeeze(1)
        if kept.numel() < y.numel():
            rows_kept = kept  # ignored tokens cost nothing: only the kept rows enter the products
    scalar_alpha, per_class = alpha_parts(spec)
    class_weight = None if per_class is None else torch.tensor(per_class, dtype=dtype, device=hidden.device)
    if rows_kept is not None:
        h, y_safe = h.index_select(0, rows_kept), y.index_select(0, rows_kept)
        coeff = torch.full(y_safe.shape, scalar_alpha, dtype=dtype, device=hidden.device)
        count: Any = rows_kept.numel()
    else:
        y_safe = y.masked_fill(~keep, 0)
        coeff = keep.to(dtype) * scalar_alpha
        count = keep.sum().to(dtype)
    if reduction == "mean":
        coeff = coeff / count if isinstance(count, Tensor) else coeff * (1.0 / count if count else float("nan"))
    grads_wanted = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    per_token = reduction == "none"
    rows = chunk_size or max(1, CHUNK_BYTES // (4 * num_classes))
    plan = Plan(
        spec=spec,
        rows=rows,
        per_token=per_token,
        eager_grads=grads_wanted and not per_token,
        need_hidden=hidden.requires_grad,
        need_weight=weight.requires_grad,
        need_bias=bias is not None and bias.requires_grad,
    )
    loss = FusedLinearPolyLoss.apply(h, weight, bias, y_safe, coeff, class_weight, plan)
    if not per_token:
        # torch's mean over zero tokens is 0 / 0 = nan; the fused sum of no rows is 0.
        no_rows = not y.numel() or (rows_kept is not None and not rows_kept.numel())
        return loss / 0.0 if reduction == "mean" and no_rows else loss
    if rows_kept is not None:
        loss = torch.zeros(y.shape, dtype=dtype, device=hidden.device).index_copy(0, rows_kept, loss)
    return loss.reshape(out_shape)


def linear_poly_loss(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    spec: PolySpec,
    *,
    bias: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_size: int | None = None,
) -> Tensor:
    r"""Any softmax PolyLoss of the logits ``hidden @ weight.T + bias``, without forming them.

    Equals ``poly_loss(hidden @ weight.T + bias, target, spec, ...)`` in value and
    in the gradients of ``hidden``, ``weight`` and ``bias``, for class-index
    targets. Per token, with ``c = logsumexp(z) - z_y`` and ``x = 1 - p_y = -expm1(-c)``,

    $$
    \ell = w_y \left(c\,x^{\gamma} + \sum_j \epsilon_j x^{j+\gamma}\right),
    $$

    and with label smoothing ``s`` the loss is \((1 - s)\,\ell + (s / C) \sum_c w_c\, l(p_c)\).
    ``spec.alpha`` is the class weight \(w\): one number scales every token, a
    tuple of ``V`` numbers weighs each class (like ``poly_loss``, it does not
    enter the denominator of ``"mean"``).

    The logits are computed ``chunk_size`` rows at a time. For ``"mean"`` and
    ``"sum"`` the gradients are formed during the forward pass and kept until the
    backward (the same three matrix products as the unfused loss); for
    ``"none"`` the backward recomputes each chunk's logits (four products).
    Tokens whose target is ``ignore_index`` are dropped before any product.
    Double backward is not supported.

    Args:
        hidden: ``(..., D)`` features, floating point. float16 / bfloat16 inputs are
            multiplied in their dtype (the GEMM accumulates in float32, as
            ``hidden @ weight.T`` does); the softmax, loss and gradient
            accumulation of ``weight`` and ``bias`` are float32, and the gradients
            come back in the inputs' dtype.
        weight: ``(V, D)`` output projection (``nn.Linear(D, V).weight``, or tied
            embeddings), same dtype and device as ``hidden``.
        target: integer class indices in ``[0, V)`` or ``ignore_index``, of shape
            ``hidden.shape[:-1]``.
        spec: the loss (softmax family): epsilons, gamma, alpha, label smoothing.
        bias: optional ``(V,)`` bias. Default ``None``.
        ignore_index: target value that contributes no loss and no gradient and is
            left out of the mean. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"`` (over the
            non-ignored tokens).
        chunk_size: rows (tokens) per chunk, ``>= 1``. Default ``None``: as many as
            make 64 MiB of float32 logits (130 rows for ``V = 128,256``).

    Shape:
        - hidden: ``(N, D)`` or ``(B, T, D)``, any leading dimensions.
        - weight: ``(V, D)``; bias: ``(V)``.
        - target: ``hidden.shape[:-1]``.
        - output: a scalar, or ``target``'s shape for ``"none"``.

    Returns:
        The loss: float64 for float64 inputs, float32 otherwise.

    Raises:
        TypeError: non-tensors, a non-floating ``hidden``/``weight``/``bias``,
            non-integer ``target``, mixed dtypes, or ``spec`` not a ``PolySpec``.
        ValueError: mismatched shapes, tensors on different devices, a class index
            outside ``[0, V)`` that is not ``ignore_index``, ``chunk_size < 1``, an
            unknown ``reduction``, or a sigmoid-only ``spec``.

    Note:
        Labels are read only where that needs no device synchronisation: for CPU
        tensors outside ``torch.compile`` they are checked (a ``ValueError`` naming
        the bad index) and ignored tokens are dropped before the products. On an
        accelerator and under ``torch.compile`` nothing is read back: ignored tokens
        are computed and masked, and an out-of-range index fails in the gather's own
        bounds check (a device-side assert), as with ``F.cross_entropy``.

    Examples:
        >>> import torch
        >>> from polyloss_core import PolySpec
        >>> from polyloss_torch import poly_loss
        >>> h, w = torch.randn(6, 4), torch.randn(10, 4)
        >>> y = torch.tensor([1, 2, 3, -100, 9, 0])
        >>> fused = linear_poly_loss(h, w, y, PolySpec.poly1_focal(1.0, 2.0), chunk_size=4)
        >>> torch.allclose(fused, poly_loss(h @ w.T, y, PolySpec.poly1_focal(1.0, 2.0)))
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    checks.check_reduction(reduction)
    ignore_index = checks.check_int("ignore_index", ignore_index)
    rows = _check_chunk_size(chunk_size)
    _check_arrays(hidden, weight, target, bias)
    return _linear_loss(hidden, weight, target, spec, bias, ignore_index, reduction, rows)


def linear_poly1_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    bias: Tensor | None = None,
    epsilon: float = 1.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Poly-1 cross-entropy of ``hidden @ weight.T + bias`` without the logit matrix.

    Equals ``poly1_cross_entropy(hidden @ weight.T + bias, target, epsilon=...,
    ignore_index=..., reduction=..., label_smoothing=...)`` in value and in the
    gradients of ``hidden``, ``weight`` and ``bias``. Per token
    \(\ell = \mathrm{CE} + \epsilon (1 - p_y)\); with label smoothing ``s``,
    \((1 - s)\ell + (s / C)\left(\sum_c -\log p_c + \epsilon (C - 1)\right)\).
    See ``linear_poly_loss`` for how the chunks, dtypes and gradients work.

    Args:
        hidden: ``(..., D)`` features (the last hidden states), floating point.
        weight: ``(V, D)`` output projection, same dtype and device.
        target: ``hidden.shape[:-1]`` integer class indices in ``[0, V)`` or ``ignore_index``.
        bias: optional ``(V,)``. Default ``None``.
        epsilon: coefficient of ``1 - p_y``, ``>= -1``. Default ``1.0``.
        ignore_index: target value left out of the loss and the mean. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        chunk_size: rows per chunk, ``>= 1``; default: 64 MiB of float32 logits.

    Shape:
        - hidden: ``(..., D)``; weight: ``(V, D)``; bias: ``(V)``; target: ``(...)``.
        - output: a scalar, or ``target``'s shape for ``"none"``.

    Returns:
        The loss: float64 for float64 inputs, float32 otherwise.

    Raises:
        TypeError, ValueError: as ``linear_poly_loss``; also for an invalid
            ``epsilon`` or ``label_smoothing``.

    Examples:
        >>> import torch
        >>> from polyloss_torch import poly1_cross_entropy
        >>> h, w, b = torch.randn(5, 8), torch.randn(11, 8), torch.randn(11)
        >>> y = torch.tensor([0, 10, -100, 3, 3])
        >>> loss = linear_poly1_cross_entropy(h, w, y, bias=b, epsilon=2.0, chunk_size=2)
        >>> torch.allclose(loss, poly1_cross_entropy(h @ w.T + b, y, epsilon=2.0))
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (4).
    """
    spec = poly1_spec(checks.check_epsilon(epsilon), label_smoothing=checks.check_label_smoothing(label_smoothing))
    return linear_poly_loss(
        hidden, weight, target, spec, bias=bias, ignore_index=ignore_index, reduction=reduction, chunk_size=chunk_size
    )


class LinearPolyLoss(nn.Module):
    r"""Module form of ``linear_poly_loss`` for any softmax ``PolySpec``; holds the options, not the head.

    Args:
        spec: the loss (softmax family).
        ignore_index: target value left out of the loss. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``.
        chunk_size: rows per chunk, ``>= 1``, or ``None``.

    Shape:
        - hidden: ``(*, D)``; weight: ``(V, D)``; bias: ``(V)``; target: ``(*)`` class indices.
        - output: a scalar, or ``target``'s shape for ``"none"``.

    Examples:
        >>> import torch
        >>> from polyloss_core import PolySpec
        >>> criterion = LinearPolyLoss(PolySpec.focal(gamma=2.0))
        >>> criterion(torch.randn(4, 8), torch.randn(11, 8), torch.tensor([0, 1, 2, 3])).shape
        torch.Size([])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self, spec: PolySpec, ignore_index: int = -100, reduction: str = "mean", chunk_size: int | None = None
    ) -> None:
        super().__init__()
        if not isinstance(spec, PolySpec):
            raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
        self.spec = spec
        check_family(spec, "softmax")
        self.ignore_index = checks.check_int("ignore_index", ignore_index)
        self.reduction = checks.check_reduction(reduction)
        self.chunk_size = _check_chunk_size(chunk_size)

    def forward(self, hidden: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None = None) -> Tensor:
        _check_arrays(hidden, weight, target, bias)
        return _linear_loss(hidden, weight, target, self.spec, bias, self.ignore_index, self.reduction, self.chunk_size)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class LinearPoly1CrossEntropyLoss(LinearPolyLoss):
    r"""Module form of ``linear_poly1_cross_entropy``: holds the options, not the head.

    Call it with the head's parameters, as ``loss(hidden, lm_head.weight, target,
    bias=lm_head.bias)``: the projection stays in the model (tied embeddings,
    sharding and weight decay keep working) and the loss computes the logits in
    chunks. Options are checked once, here.

    Args:
        epsilon: coefficient of ``1 - p_y``, ``>= -1``. Default ``1.0``.
        ignore_index: target value left out of the loss. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        chunk_size: rows per chunk, ``>= 1``, or ``None`` (64 MiB of float32 logits).

    Shape:
        - hidden: ``(..., D)``; weight: ``(V, D)``; target: ``hidden.shape[:-1]``.
        - output: a scalar, or ``target``'s shape for ``"none"``.

    Examples:
        >>> import torch
        >>> head = torch.nn.Linear(8, 11)
        >>> criterion = LinearPoly1CrossEntropyLoss(epsilon=1.0)
        >>> hidden, target = torch.randn(2, 3, 8), torch.tensor([[1, 2, 3], [4, 5, -100]])
        >>> criterion(hidden, head.weight, target, bias=head.bias).shape
        torch.Size([])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(
            poly1_spec(checks.check_epsilon(epsilon), label_smoothing=checks.check_label_smoothing(label_smoothing)),
            ignore_index,
            reduction,
            chunk_size,
        )
        self.epsilon = self.spec.epsilons[0]
        self.label_smoothing = self.spec.label_smoothing

    def extra_repr(self) -> str:
        return (
            f"epsilon={self.epsilon}, ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}, chunk_size={self.chunk_size}"
        )
