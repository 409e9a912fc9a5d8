"""Softmax cross-entropy at the target class, with a single-pass backward.

For class-index targets every member of the PolyLoss family is a function of
two per-example numbers: ``c = -log p_t`` (the cross-entropy) and
``x = 1 - p_t = -expm1(-c)`` (SPEC section 4). ``target_cross_entropy``
returns both; the polynomial is then evaluated by autograd on these
``N``-sized tensors with ``polyloss_core.series``, so no PolyLoss maths is
written here, only the cross-entropy's own derivative.

Two ways to get ``(c, x)``, chosen per call for speed (same numbers either way):

* ``F.cross_entropy(..., reduction="none")`` and ``expm1``: torch's own fused
  kernels. Fastest when the classes are a contiguous dimension with at least
  16 entries, e.g. ``(4096, 1000)`` logits.
* ``TargetCrossEntropy``, a custom ``autograd.Function``. torch differentiates
  the unreduced cross-entropy in two full passes over the logits (the NLL
  backward writes a zero-filled one-hot tensor, the log-softmax backward reads
  it), its log-softmax kernels are slow for few classes, and for
  ``(N, C, d1, ...)`` inputs its unreduced forward is several times slower
  than the reduced one. The gradient of ``c`` is ``g (softmax(z) - onehot(t))``:
  one pass that scales ``exp(log_softmax(z))`` and one write per example at the
  target, where ``p_t - 1 = -x`` is stored exactly instead of being formed by
  cancellation. It wins for ``(N, C, H, W)`` and for ``(65536, 10)`` logits.

``benchmarks/bench_torch.py`` measures both against ``F.cross_entropy``.

The Function's backward uses only differentiable operations (out of place when
a graph is being built) and reads the saved *outputs* ``log_p`` and ``x``, so
double backward (``create_graph=True``) is exact; it is checked with
``torch.autograd.gradgradcheck``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad


class TargetCrossEntropy(torch.autograd.Function):
    """``(c, x, log_p)`` with ``c = -log p_t``, ``x = 1 - p_t`` and ``log_p = log_softmax(z, dim)``.

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
        log_p = torch.log_softmax(z, dim)
        c = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim).neg_()
        if keep is not None:
            c = c.masked_fill_(~keep, 0.0)
        x = torch.expm1(-c).neg_()
        ctx.dim = dim
        ctx.has_keep = keep is not None
        ctx.save_for_backward(log_p, x, index, *((keep,) if keep is not None else ()))
        ctx.set_materialize_grads(False)
        return c, x, log_p

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_c: Tensor | None, grad_x: Tensor | None, grad_log_p: Tensor | None
    ) -> tuple[Tensor | None, None, None, None]:
        log_p, x, index, *rest = ctx.saved_tensors
        dim = ctx.dim
        building_graph = torch.is_grad_enabled()
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
            scaled = torch.exp(log_p)
            if building_graph:
                grad = (scaled * g.unsqueeze(dim)).scatter(dim, index.unsqueeze(dim), at_target)
            else:
                grad = scaled.mul_(g.unsqueeze(dim)).scatter_(dim, index.unsqueeze(dim), at_target)
        if grad_log_p is not None:
            # log_softmax's own backward, for callers that used the third output.
            through_log_p = grad_log_p - torch.exp(log_p) * grad_log_p.sum(dim, keepdim=True)
            grad = through_log_p if grad is None else grad + through_log_p
        return grad, None, None, None


# Below this many classes on a contiguous dimension (the float vector width of an AVX-512
# CPU), torch's log-softmax kernels take a slow per-row path.
_MIN_VECTOR_CLASSES = 16


def fused_backward_is_faster(z: Tensor, dim: int) -> bool:
    """Whether ``TargetCrossEntropy`` beats ``F.cross_entropy(..., reduction="none")``.

    A speed choice only: both give the same numbers. Measured on CPU with
    ``benchmarks/bench_torch.py``: torch's own kernels win when the classes are a
    contiguous dimension with at least 16 entries, e.g. ``(4096, 1000)``; the
    single-pass backward wins when the classes are strided, as in
    ``(N, C, H, W)``, or few, as in ``(65536, 10)``.
    """
    return z.stride(dim) != 1 or z.shape[dim] < _MIN_VECTOR_CLASSES


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

    ``TargetCrossEntropy`` where ``fused_backward_is_faster``, eagerly;
    otherwise, and always when ``transforming``, the plain expression
    (``F.cross_entropy`` and ``expm1``), which ``torch.compile`` fuses itself
    and every ``torch.func`` transform and forward-mode AD support.
    """
    if transforming(z) or not fused_backward_is_faster(z, dim):
        c = torch.nn.functional.cross_entropy(z, target, reduction="none", ignore_index=ignore_index)
        return c, -torch.expm1(-c)
    c, x, _ = TargetCrossEntropy.apply(z, safe_index, keep, dim)
    return c, x
