"""Softmax cross-entropy at the target class, with a single-pass backward.

For class-index targets every member of the PolyLoss family is a function of
two per-example numbers: ``c = -log p_t`` (the cross-entropy) and
``x = 1 - p_t`` (SPEC section 4). ``target_cross_entropy`` returns both; the
polynomial is then evaluated by autograd on these ``N``-sized tensors with
``polyloss_core.series``, so no PolyLoss maths is written here, only the
cross-entropy's own derivative.

``TargetCrossEntropy`` is a custom ``autograd.Function`` because torch's own
``F.cross_entropy`` is dear to differentiate on a CPU: its backward writes a
zero-filled one-hot tensor as large as the logits (the NLL backward) and then
reads it with the saved log-probabilities (the log-softmax backward), while the
gradient of ``c`` is simply ``g (softmax(z) - onehot(t))``. Here the forward
keeps the softmax ``p`` itself, and the backward is one multiply over it plus
one write per example at the target, where ``p_t - 1 = -x`` is stored exactly
instead of being formed by cancellation. Measured with
``benchmarks/bench_torch.py`` (one CPU thread, forward and backward of Poly-1
against ``F.cross_entropy``): 0.80-0.86x at ``(4096, 1000)``, 0.61-0.63x at
``(2048, 32000)``, 0.82-0.85x at ``(8, 21, 128, 128)`` and 0.80x at
``(65536, 10)``, with 0.67-0.83x of its peak memory (no one-hot tensor).

Two ways to get ``p`` and ``c`` in the forward, chosen per call for speed (same
numbers to float rounding, both tested against the float64 reference):

* ``softmax`` (the usual case): ``c = -log p_t``. Where ``p_t`` underflows
  (a logit gap beyond about 87 in float32) ``c`` is recomputed for those
  examples only, as ``logsumexp(z) - z_t``, so it stays exact and finite.
* ``log_softmax`` then ``exp``, for a contiguous class dimension with fewer than
  16 entries, e.g. ``(65536, 10)``: there torch's softmax kernel takes a slow
  per-row path and its log-softmax kernel is the faster one.

The backward uses only differentiable operations and reads the saved *outputs*
``p`` and ``x``, so double backward (``create_graph=True``) is exact; it is
checked with ``torch.autograd.gradgradcheck``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad


class TargetCrossEntropy(torch.autograd.Function):
    """``(c, x, p)`` with ``c = -log p_t``, ``x = 1 - p_t`` and ``p = softmax(z, dim)``.

    Inputs: logits ``z``; ``index``, int64 class indices with ``z``'s shape
    without ``dim``, every entry in ``[0, C)``; ``keep``, ``None`` or a bool
    tensor of ``index``'s shape that is ``False`` where the example is ignored
    (``c = x = 0`` there, and no gradient); ``dim``, the class dimension.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z: Tensor, index: Tensor, keep: Tensor | None, dim: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        # The classic ctx-in-forward form: the setup_context form costs an inspect.signature
        # per call, and this Function is never used under torch.func transforms (see transforming).
        target_index = index.unsqueeze(dim)
        if softmax_kernel_is_faster(z, dim):
            p = torch.softmax(z, dim)
            p_t = p.gather(dim, target_index).squeeze(dim)
            c = p_t.log().neg_()
            _exact_where_underflow(c, p_t, z, index, dim)
            x = torch.rsub(p_t, 1.0)
        else:
            log_p = torch.log_softmax(z, dim)
            c = log_p.gather(dim, target_index).squeeze(dim).neg_()
            x = torch.expm1(-c).neg_()
            p = log_p.exp_()
        if keep is not None:
            c = c.masked_fill_(~keep, 0.0)
            x = x.masked_fill_(~keep, 0.0)
        ctx.dim = dim
        ctx.has_keep = keep is not None
        ctx.save_for_backward(p, x, index, *((keep,) if keep is not None else ()))
        ctx.set_materialize_grads(False)
        return c, x, p

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_c: Tensor | None, grad_x: Tensor | None, grad_p: Tensor | None
    ) -> tuple[Tensor | None, None, None, None]:
        p, x, index, *rest = ctx.saved_tensors
        dim = ctx.dim
        # d/dc of everything that reached c directly or through x = 1 - exp(-c).
        g: Tensor | None = grad_c
        if grad_x is not None:
            via_x = grad_x * (1.0 - x)
            g = via_x if g is None else g + via_x
        if ctx.has_keep and g is not None:
            g = g.masked_fill(~rest[0], 0.0)
        grad: Tensor | None = None
        if g is not None:
            at_target = (-(g * x)).unsqueeze(dim)  # g (p_t - 1), without cancellation
            # In place on the product, which no backward node saves, so also when a graph is being built.
            grad = (p * g.unsqueeze(dim)).scatter_(dim, index.unsqueeze(dim), at_target)
        if grad_p is not None:
            # softmax's own backward, for callers that used the third output.
            through_p = p * (grad_p - (grad_p * p).sum(dim, keepdim=True))
            grad = through_p if grad is None else grad + through_p
        return grad, None, None, None


def _exact_where_underflow(c: Tensor, p_t: Tensor, z: Tensor, index: Tensor, dim: int) -> None:
    """Recompute ``c = logsumexp(z) - z_t`` in place where ``p_t`` is below the dtype's ``tiny``.

    There ``-log p_t`` is inaccurate (subnormal) or infinite (0). Only those
    examples are read again; well-trained models rarely have any. Meta tensors
    hold no values to test, only shapes, which this leaves unchanged.
    """
    if p_t.device.type == "meta":
        return
    underflow = p_t < torch.finfo(p_t.dtype).tiny
    if not bool(underflow.any()):
        return
    rows = z.movedim(dim, -1)[underflow]  # (K, C)
    picked = rows.gather(-1, index[underflow].unsqueeze(-1)).squeeze(-1)
    c[underflow] = torch.logsumexp(rows, -1) - picked


# Below this many classes on a contiguous dimension (the float vector width of an AVX-512
# CPU), torch's softmax kernel takes a slow per-row path and its log-softmax kernel is faster.
_MIN_VECTOR_CLASSES = 16


def softmax_kernel_is_faster(z: Tensor, dim: int) -> bool:
    """Whether ``TargetCrossEntropy`` should take ``softmax`` rather than ``log_softmax`` then ``exp``.

    A speed choice only: both give the same numbers to float rounding. Measured
    on CPU with ``benchmarks/bench_torch.py``: ``log_softmax`` then ``exp`` wins
    only when the classes are a contiguous dimension with fewer than 16 entries,
    as in ``(65536, 10)``.
    """
    return z.stride(dim) != 1 or z.shape[dim] >= _MIN_VECTOR_CLASSES


def transforming(tensor: Tensor) -> bool:
    """Whether ``tensor`` is being traced or transformed rather than computed eagerly.

    True under ``torch.compile`` tracing, inside ``torch.func`` transforms
    (``vmap``, ``grad``, ``jvp``, ...) and for forward-mode AD dual tensors.
    There, values cannot (or should not) be read back to the host, and the plain
    composition of torch operations is used instead of
    ``TargetCrossEntropy``, whose only purpose is eager speed.
    """
    if torch.compiler.is_compiling():
        return True
    if torch._C._are_functorch_transforms_active():
        return True
    return forward_ad.unpack_dual(tensor).tangent is not None


def target_cross_entropy(
    z: Tensor, target: Tensor, safe_index: Tensor, keep: Tensor | None, ignore_index: int, dim: int
) -> tuple[Tensor, Tensor]:
    """``c = -log p_t`` and ``x = 1 - p_t`` per example (both 0 where ``keep`` is False).

    ``TargetCrossEntropy`` eagerly; when ``transforming``, the plain expression
    (``F.cross_entropy`` and ``expm1``), which ``torch.compile`` fuses itself
    and every ``torch.func`` transform and forward-mode AD support.
    """
    if transforming(z):
        c = torch.nn.functional.cross_entropy(z, target, reduction="none", ignore_index=ignore_index)
        return c, -torch.expm1(-c)
    c, x, _ = TargetCrossEntropy.apply(z, safe_index, keep, dim)
    return c, x
