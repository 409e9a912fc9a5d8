"""Softmax PolyLoss on DTensor logits sharded on the class dimension (tensor parallelism).

Inside ``torch.distributed.tensor.parallel.loss_parallel()``, torch computes
``F.cross_entropy`` of class-sharded logits with all-reduces of per-row numbers
(the maximum, the sum of exponentials, the target logit), never gathering the
logits. For class-index targets every softmax member of the family is a function
of that per-token cross-entropy (SPEC section 4), so the PolyLoss takes torch's
per-token CE (``reduction="none"``, ignored tokens given a valid class), reads
it as the replicated ``(N,)`` tensor it is, and finishes with
``polyloss_core.series.loss_from_ce``, the class weights, the ignore mask and
the reduction on those ``N`` numbers. Label smoothing of Poly-1 adds one
sharded ``log_softmax`` summed over classes (one more per-row all-reduce).

The result is a replicated DTensor, like ``F.cross_entropy``'s; call
``backward()`` inside ``loss_parallel()`` as torch requires.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from polyloss_core import PolySpec, check_family
from polyloss_core.series import alpha_parts, is_poly1, loss_from_ce, poly1_class_sum

from . import _impl
from . import _validate as V
from ._ops import OPS

__all__ = ["is_dtensor", "softmax_loss"]


def is_dtensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.distributed.tensor.DTensor`` (False where torch.distributed is absent)."""
    # Nobody holds a DTensor before torch.distributed.tensor is imported: no import (and no cost) here.
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(value, module.DTensor)


def _local(value: Tensor) -> Tensor:
    """A small replicated (or partial) DTensor as the plain tensor every rank holds; plain tensors pass through."""
    return cast(Any, value).full_tensor() if is_dtensor(value) else value


def _replicate_like(value: Tensor, like: Tensor) -> Tensor:
    """``value`` (the same on every rank) as a replicated DTensor on ``like``'s mesh."""
    from torch.distributed.tensor import DTensor, Replicate

    mesh = like.device_mesh  # type: ignore[attr-defined]
    return DTensor.from_local(value, mesh, [Replicate()] * mesh.ndim, run_check=False)


def softmax_loss(
    input: Tensor,
    target: Tensor,
    spec: PolySpec,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    epsilon: float | None = None,
) -> Tensor:
    """``poly_loss(input, target, spec, ...)`` for DTensor logits sharded on the class dimension.

    Supports class-index targets, ``weight``, ``spec.alpha`` (number or per class),
    ``ignore_index`` and every reduction; label smoothing for Poly-1 without class
    weights. Raises ``ValueError`` for the rest (probability targets, smoothing of
    other specs) instead of gathering the logits. ``epsilon``, when given,
    replaces ``eps_1`` of ``spec`` (the Poly-1 functions pass it separately).
    Class indices are read back only where they already live on the host (CPU
    tensors: a clear error); elsewhere an out-of-range index gives NaN for that
    example, with no device-to-host copy.
    """
    class_dim = 0 if input.dim() == 1 else 1
    num_classes = input.shape[class_dim]
    check_family(spec, "softmax", num_classes)
    labels = _local(target)
    if labels.is_floating_point():
        raise ValueError(
            "DTensor logits (tensor parallelism) support class-index targets only, got a floating point target"
        )
    V.index_shape(input, labels, class_dim)
    smoothing = spec.label_smoothing
    weighted = weight is not None or alpha_parts(spec)[1] is not None
    if smoothing and (weighted or not is_poly1(spec)):
        raise ValueError(
            "label_smoothing with DTensor logits is supported for Poly-1 without class weights only, "
            f"got label_smoothing={smoothing} with {spec!r} and weight={'set' if weighted else None}"
        )
    labels = labels.long()
    error = V.bad_index_error(labels, num_classes, ignore_index)
    if error is not None:
        raise error
    ignored = labels == ignore_index
    bad = ((labels < 0) | (labels >= num_classes)) & ~ignored  # off the host: NaN for those, no read
    z = input.to(V.compute_dtype(input.dtype))
    # torch's sharded cross-entropy: per-row all-reduces only, under loss_parallel().
    ce = cast(Any, F.cross_entropy(z, labels.masked_fill(ignored | bad, 0), reduction="none")).to_local()
    per_example = loss_from_ce(ce, -torch.expm1(-ce), spec, OPS, epsilon=epsilon)
    if smoothing:
        # sum_c -log p_c = C lse - sum_c z_c, from per-row reductions of the shards (all-reduces of N numbers).
        # (loss_parallel's log_softmax backward assumes an NLL loss follows, so it is not used here.)
        row_max = _local(z.detach().amax(class_dim, keepdim=True))
        shifted = z - _replicate_like(row_max, z)
        lse = _local(shifted.exp().sum(class_dim)).log() + row_max.squeeze(class_dim)
        class_sum = poly1_class_sum(num_classes * lse - _local(z.sum(class_dim)), spec, num_classes, epsilon=epsilon)
        per_example = _impl.smoothed(per_example, class_sum, spec, num_classes)
    per_example = per_example.masked_fill(ignored, 0.0).masked_fill(bad, float("nan"))
    weight = None if weight is None else _local(weight).to(ce.dtype)
    scalar, scale = _impl.class_scale(spec, weight, ce)
    loss = _impl.finish_indices(
        per_example,
        labels.masked_fill(bad, 0),
        ignore_index,
        reduction,
        weight,
        scale=scale,
        scalar=scalar,
        ignored=ignored,
    )
    return _replicate_like(loss, input)
