"""Custom ``torch.autograd.Function`` s: cross-entropy pieces with hand-written, single-pass backwards.

No PolyLoss decision lives here, only the derivatives of two softmax quantities
that torch's own kernels make dear to differentiate on a CPU:

* ``TargetCrossEntropy``: ``c = -log p_t`` and ``x = 1 - p_t`` for class
  indices. Every member of the family is a function of these two (SPEC section
  4); the polynomial is applied by ``polyloss_core.series`` on ``N``-sized tensors.
  ``F.cross_entropy``'s backward writes a zero-filled one-hot tensor as large as
  the logits and reads it with the saved log-probabilities; the gradient of ``c``
  is simply ``g (p - onehot)``: one multiply over the saved ``p`` and one write
  per example.
* ``DensePoly1``: Poly-1 with dense (probability, one-hot float, mixup)
  targets ``r`` (already smoothed and weighted):
  ``sum_c r_c (-log p_c) + eps (sum_c r_c - sum_c r_c p_c)``, from
  ``log_softmax``, ``softmax`` and three row reductions, with the elementwise
  gradient ``g (p_j (S + eps T) - r_j (1 + eps p_j))``, ``S = sum r``, ``T = sum r p``;
  the forward forms ``r (1 + eps p)`` once, for the value and the backward, in
  blocks of rows that stay in cache, and the backward writes the gradient over it.

Both backwards use differentiable operations on saved *outputs* (``p`` is
returned), so double backward is exact (``gradgradcheck`` in the tests). Neither
reads a value back from a device: out-of-range class indices fail in the
``gather`` kernel's own bounds check (see ``_validate.explain_index_error``), and
the one branch on values (``TargetCrossEntropy``'s underflow test) is taken only
for CPU tensors, whose values already live on the host (``branches_on_host``).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor
from torch.autograd import forward_ad

from polyloss_core import PolySpec, poly1_spec
from polyloss_core.series import loss_from_ce, poly1_dense_sum, sigmoid_alpha_t

from ._ops import OPS

POLY1 = poly1_spec()  # its epsilon is replaced per call

# Below this many classes on a contiguous dimension (the float vector width of an AVX-512 CPU),
# torch's softmax kernel takes a slow per-row path. For a strided class dimension (segmentation)
# the softmax path wins only where its underflow fallback (two reductions over the logits) can be
# skipped, i.e. on the host; there log_softmax + nll_loss + exp is cheaper.
_MIN_VECTOR_CLASSES = 16
# Blocks of rows that stay in a core's cache while several operations read them (about the 1 MB of
# L2 per core measured here; 0.5 and 2 MB measured slower): a speed choice only, same numbers.
_BLOCK_BYTES = 1 << 20


def eager(tensor: Tensor) -> bool:
    """Whether ``tensor`` is computed eagerly: not compiled, traced, under ``torch.func`` or forward-mode AD.

    The Functions here exist for eager speed; elsewhere the plain composition of
    torch operations is used, which ``torch.compile`` fuses itself and every
    ``torch.func`` transform supports. A ``torch.jit.trace`` would record the
    branches taken on the example's values (underflow, one-hot rows) for every
    later input, so it records the composition too.
    """
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch._C._are_functorch_transforms_active()
        and forward_ad.unpack_dual(tensor).tangent is None
    )


def branches_on_host(tensor: Tensor) -> bool:
    """Whether a Function may branch on ``tensor``'s values: CPU memory, where reading is no device sync.

    Decided once per call from the device type alone; the Functions run eagerly only.
    """
    return tensor.device.type == "cpu"


def softmax_kernel_is_faster(z: Tensor, dim: int) -> bool:
    """Whether ``softmax`` beats ``log_softmax`` then ``exp`` (a speed choice; same numbers to rounding)."""
    if z.stride(dim) != 1:
        return branches_on_host(z)
    return z.shape[dim] >= _MIN_VECTOR_CLASSES


class TargetCrossEntropy(torch.autograd.Function):
    """``(c, x, p, ignored)``: ``c = -log p_t``, ``x = 1 - p_t``, ``p = softmax(z, dim)``, ``c = x = 0`` where ignored.

    Inputs: logits ``z``; int64 class indices ``index`` (``z``'s shape without
    ``dim``); ``ignore_index``; the class dimension ``dim``. ``ignored`` (not
    differentiable) marks the ``ignore_index`` entries, which get no gradient.
    Other indices outside ``[0, C)`` make the ``gather`` / ``nll_loss`` kernel
    raise (CPU) or assert (accelerators).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z: Tensor, index: Tensor, ignore_index: int, dim: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # The classic ctx-in-forward form: setup_context costs an inspect.signature per call.
        ignored = index == ignore_index
        safe = index.masked_fill(ignored, 0).unsqueeze(dim)
        if softmax_kernel_is_faster(z, dim):
            p = torch.softmax(z, dim)
            p_t = p.gather(dim, safe).squeeze(dim).masked_fill_(ignored, 1.0)  # c = x = 0 where ignored
            c = p_t.log().neg_()
            # Where p_t underflows (a logit gap beyond ~87 in float32), -log p_t is inexact or inf;
            # there c = (z_max - z_t) - log p_max, exact since p_max >= 1/C. It costs two reductions
            # over the logits: CPU tensors (host memory, no device sync) skip it when nothing
            # underflows; on every other device it is computed and selected without a read.
            underflow = p_t < torch.finfo(p_t.dtype).tiny
            if not branches_on_host(z) or bool(underflow.any()):
                exact = (z.amax(dim) - z.gather(dim, safe).squeeze(dim)).sub_(p.amax(dim).log_())
                c = torch.where(underflow, exact, c)
            x = torch.rsub(p_t, 1.0)
        else:  # few classes: one kernel gives c, 0 where ignored, and the bounds check
            log_p = torch.log_softmax(z, dim)
            c = torch.nn.functional.nll_loss(log_p, index, ignore_index=ignore_index, reduction="none")
            x = torch.expm1(-c).neg_()
            p = log_p.exp_()
        ctx.dim = dim
        ctx.save_for_backward(p, x, safe, ignored)
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(ignored)
        return c, x, p, ignored

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_c: Tensor | None, grad_x: Tensor | None, grad_p: Tensor | None, _: Any = None
    ) -> tuple[Tensor | None, None, None, None]:
        p, x, safe, ignored = ctx.saved_tensors
        dim = ctx.dim
        # d/dc of everything that reached c directly or through x = 1 - exp(-c).
        g: Tensor | None = grad_c
        if grad_x is not None:
            via_x = grad_x * (1.0 - x)
            g = via_x if g is None else g + via_x
        grad: Tensor | None = None
        if g is not None:
            g = g.masked_fill(ignored, 0.0)
            at_target = (-(g * x)).unsqueeze(dim)  # g (p_t - 1), without cancellation
            # In place on the product, which no backward node saves, so also when a graph is being built.
            grad = (p * g.unsqueeze(dim)).scatter_(dim, safe, at_target)
        if grad_p is not None:
            # softmax's own backward, for callers that used the third output.
            through_p = p * (grad_p - (grad_p * p).sum(dim, keepdim=True))
            grad = through_p if grad is None else grad + through_p
        return grad, None, None, None


class DensePoly1(torch.autograd.Function):
    """``(loss, p)``: per-example Poly-1 ``sum_c r_c (-log p_c) + eps sum_c r_c (1 - p_c)`` and ``p = softmax(z)``.

    ``r`` is any non-negative dense target (not necessarily normalised, rows may
    be all zero), already smoothed and multiplied by the class weights; it gets
    no gradient (callers whose targets require grad take the composed path).
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, r: Tensor, epsilon: float, dim: int) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        # The gradient's upstream U = r (1 + eps p): its row sum S + eps T gives the value (core's
        # poly1_dense_sum) and the backward's row factor, and the backward writes the gradient over U
        # (memory that is warm and read by nothing else). The cross-entropy, p (few or strided classes),
        # U and its sum run block by block while a block's rows are in cache: one pass over memory.
        log_p = torch.log_softmax(z, dim)
        if z.stride(dim) == 1 and z.shape[dim] >= _MIN_VECTOR_CLASSES:
            p, upstream = torch.softmax(z, dim), log_p  # the softmax kernel beats exp here; U over log p
        else:  # few or strided classes, where that kernel is slow: exp in place, U in its own memory
            p, upstream = log_p, torch.empty_like(log_p)
        ce = log_p.new_empty(log_p.shape[:dim] + log_p.shape[dim + 1 :])
        upstream_sum = torch.empty_like(ce)
        for rows in _row_blocks(z, dim):
            r_rows = r[rows]
            torch.linalg.vecdot(r_rows, log_p[rows], dim=dim, out=ce[rows])
            p_rows = p[rows] if p is not log_p else log_p[rows].exp_()
            torch.addcmul(r_rows, r_rows, p_rows, value=epsilon, out=upstream[rows])
            torch.sum(upstream[rows], dim, out=upstream_sum[rows])
        ce = ce.neg_()
        ctx.upstream = upstream  # not a saved tensor: a second backward (retain_graph) forms it again
        loss = poly1_dense_sum(ce, r.sum(dim), upstream_sum, POLY1, epsilon=epsilon)
        ctx.dim, ctx.epsilon = dim, epsilon
        ctx.save_for_backward(p, r, upstream_sum)
        ctx.set_materialize_grads(False)
        return loss, p

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor | None, grad_p: Tensor | None) -> tuple[Tensor | None, None, None, None]:  # type: ignore[override]
        p, r, upstream_sum = ctx.saved_tensors
        upstream, ctx.upstream = ctx.upstream, None  # used once
        dim, eps = ctx.dim, ctx.epsilon
        grad: Tensor | None = None
        if grad_loss is not None:
            g = grad_loss.unsqueeze(dim)
            if torch.is_grad_enabled():  # double backward: the upstream's own dependence on z in the graph
                upstream = torch.addcmul(r, r, p, value=eps)
                grad = (p * upstream.sum(dim, keepdim=True) - upstream) * g
            else:  # log_softmax's backward for -g r (1 + eps p): g (p (S + eps T) - r (1 + eps p))
                if upstream is None:
                    upstream = torch.addcmul(r, r, p, value=eps)
                grad = upstream.addcmul_(p, upstream_sum.unsqueeze(dim), value=-1.0).mul_(-g)
        if grad_p is not None:
            through_p = p * (grad_p - (grad_p * p).sum(dim, keepdim=True))
            grad = through_p if grad is None else grad + through_p
        return grad, None, None, None


def _row_blocks(z: Tensor, dim: int) -> list[Any]:
    """Indices of blocks of ``z``'s first dimension, about ``_BLOCK_BYTES`` each (all of it when ``dim`` is 0)."""
    if dim == 0 or not z.numel():
        return [...]
    rows = max(1, _BLOCK_BYTES // (z.numel() // z.shape[0] * z.element_size()))
    return [slice(start, start + rows) for start in range(0, z.shape[0], rows)]


class SigmoidPoly1Focal(torch.autograd.Function):
    """Per-element sigmoid Poly-1 focal loss ``a_t (BCE x^g + eps x^(g+1))`` for a spec with integer ``g >= 0``.

    ``x = 1 - p_t = t sigmoid(-z) + (1 - t) sigmoid(z)`` (a ``lerp`` of two accurate
    sigmoids, no cancellation as ``p_t -> 1``); ``a_t`` is core's ``sigmoid_alpha_t``
    (recomputed in the backward rather than saved). The
    first-order backward is one elementwise expression,
    ``a_t x^(g-1) ((p - t) x + (g BCE + eps (g+1) x)(1 - 2t) p (1 - p))``
    (core's ``series.sigmoid_slope``, written here with in-place operations: eager
    torch allocates a tensor per operator; the plain form measured slower, docs/benchmarks.md);
    when a graph is being built (double backward) the gradient is recomputed by
    autograd through ``composed``, the same loss written with plain torch operations.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, z: Tensor, t: Tensor, spec: PolySpec, epsilon: float, composed: Any
    ) -> Tensor:
        alpha, gamma = cast(float | None, spec.alpha), int(spec.gamma)  # one number (check_family)
        q, p = torch.sigmoid(-z), torch.sigmoid(z)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none")
        x = torch.lerp(p, q, t)
        power = (x if gamma == 2 else x ** (gamma - 1)) if gamma > 1 else None  # x^(g-1), for the backward
        loss = loss_from_ce(bce, x, spec, OPS, epsilon=epsilon)  # the value: the core's one definition
        a_t = sigmoid_alpha_t(t, alpha)
        if a_t is not None:
            loss = loss.mul_(a_t)
        ctx.gamma, ctx.epsilon, ctx.alpha, ctx.composed = gamma, epsilon, alpha, composed
        ctx.save_for_backward(z, t, p, q, bce, x, power)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # type: ignore[override]
        z, t, p, q, bce, x, power = ctx.saved_tensors
        gamma, eps = ctx.gamma, ctx.epsilon
        if torch.is_grad_enabled():  # double backward: differentiate the plain composition instead
            (out,) = torch.autograd.grad(ctx.composed(z), z, grad, create_graph=True)
            return out, None, None, None, None
        slope = torch.rsub(t, 1.0, alpha=2.0).mul_(p).mul_(q)  # d x / d z = (1 - 2t) p (1 - p)
        if gamma == 0:
            out = slope.mul_(eps).add_(x).addcmul_(t, q, value=-2.0)  # p - t = x - 2 t q, exact at t = 0, 1
        else:
            inner = torch.add(bce, x, alpha=eps * (gamma + 1) / gamma).mul_(slope).mul_(gamma)
            # p - t = x - 2 t q (exact at t = 0 and 1), into slope's memory: no third temporary.
            out = torch.addcmul(x, t, q, value=-2.0, out=slope).mul_(x).add_(inner)
            if power is not None:
                out = out.mul_(power)
        a_t = sigmoid_alpha_t(t, ctx.alpha)
        return (out if a_t is None else out.mul_(a_t)).mul_(grad), None, None, None, None
