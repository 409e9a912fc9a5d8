"""The chunked linear + PolyLoss autograd Function behind ``polyloss_torch.linear``.

For hard labels every softmax member of the family is a function of the
per-token cross-entropy ``c = lse(z) - z_y`` (SPEC section 4), and its
gradient with respect to the logits is a per-token multiple of
``softmax(z) - onehot(y)``. So the logits ``z = h W^T + b`` are only ever
needed one chunk of rows at a time: each chunk is computed, reduced to a few
per-token numbers, turned into its logit gradient and multiplied back into
``dh`` and ``dW``, then freed.

Two schedules, chosen per call:

* scalar reductions (``"mean"``, ``"sum"``) with gradients wanted: the
  gradients are formed in the forward pass (as Liger Kernel's fused linear
  cross-entropy does), so one training step runs the three matrix products of
  the unfused ``hidden @ weight.T`` + loss and nothing more. The backward
  multiplies the stored ``dh``, ``dW``, ``db`` by the incoming scalar.
* ``reduction="none"`` (the upstream gradient differs per token) or no
  gradients wanted: the forward keeps only three per-token numbers (the
  coefficients of the logit gradient); the backward recomputes each chunk's
  logits and softmax (four products).

The polynomial itself comes from ``polyloss_core.series.loss_from_ce``; its
derivative with respect to ``c`` (or, for label smoothing with a general spec,
with respect to ``log p_c``) is taken by forward-mode dual numbers
(``_Dual``), which any tracer, ``torch.compile`` included, sees as plain
tensor arithmetic. No PolyLoss formula is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from polyloss_core import PolySpec
from polyloss_core.series import ArrayOps, loss_from_ce, poly1_class_sum, smoothing_weights

from ._ops import OPS


# --------------------------------------------------------------------------- forward-mode derivatives
class _Dual:
    """``value + tangent * d``: enough arithmetic for ``polyloss_core.series`` on elementwise functions."""

    __slots__ = ("tan", "val")

    def __init__(self, val: Any, tan: Any) -> None:
        self.val, self.tan = val, tan

    def __add__(self, other: Any) -> _Dual:
        if isinstance(other, _Dual):
            return _Dual(self.val + other.val, self.tan + other.tan)
        return _Dual(self.val + other, self.tan)

    __radd__ = __add__

    def __neg__(self) -> _Dual:
        return _Dual(-self.val, -self.tan)

    def __sub__(self, other: Any) -> _Dual:
        return self + (-other)

    def __rsub__(self, other: Any) -> _Dual:
        return (-self) + other

    def __mul__(self, other: Any) -> _Dual:
        if isinstance(other, _Dual):
            return _Dual(self.val * other.val, self.tan * other.val + self.val * other.tan)
        return _Dual(self.val * other, self.tan * other)

    __rmul__ = __mul__

    def __pow__(self, exponent: float) -> _Dual:
        return _Dual(self.val**exponent, exponent * self.val ** (exponent - 1) * self.tan)

    def __gt__(self, other: Any) -> Any:
        return self.val > other


def _dual_where(condition: Any, a: Any, b: Any) -> _Dual:
    a_val, a_tan = (a.val, a.tan) if isinstance(a, _Dual) else (a, 0.0)
    b_val, b_tan = (b.val, b.tan) if isinstance(b, _Dual) else (b, 0.0)
    return _Dual(torch.where(condition, a_val, b_val), torch.where(condition, a_tan, b_tan))


# ``ArrayOps`` over ``_Dual`` numbers of torch tensors (the softmax family only: no sigmoid).
_DUAL_OPS = ArrayOps(where=_dual_where, tiny=lambda x: OPS.tiny(x.val if isinstance(x, _Dual) else x))


def loss_and_slope(ce: Tensor, spec: PolySpec) -> tuple[Tensor, Tensor]:
    """Per-token ``l(c)`` from ``loss_from_ce`` and its derivative ``dl/dc``, with ``1 - p = -expm1(-c)``."""
    dual_ce = _Dual(ce, torch.ones_like(ce))
    one_minus_p = _Dual(-torch.expm1(-ce), torch.exp(-ce))
    out = loss_from_ce(dual_ce, one_minus_p, spec, _DUAL_OPS)
    return out.val, _as_tensor(out.tan, ce)


def class_loss_and_slope(log_p: Tensor, spec: PolySpec) -> tuple[Tensor, Tensor]:
    """``l(p_c)`` for every class and ``u_c = dl(p_c)/dlog p_c``, elementwise over ``log_p``."""
    one = torch.ones_like(log_p)
    out = loss_from_ce(_Dual(-log_p, -one), _Dual(-torch.expm1(log_p), -log_p.exp()), spec, _DUAL_OPS)
    return out.val, _as_tensor(out.tan, log_p)


def _as_tensor(value: Any, like: Tensor) -> Tensor:
    return value if isinstance(value, Tensor) else torch.full_like(like, float(value))


# --------------------------------------------------------------------------- one chunk
@dataclass(frozen=True)
class Plan:
    """What the Function needs besides tensors (hashable, so ``torch.compile`` treats it as a constant)."""

    spec: PolySpec
    rows: int  # rows of hidden per chunk
    per_token: bool  # reduction "none": return per-token losses, recompute in the backward
    eager_grads: bool  # form dh, dW, db in the forward
    need_hidden: bool
    need_weight: bool
    need_bias: bool


def _poly1_smoothing(spec: PolySpec, class_weight: Tensor | None) -> bool:
    """Whether smoothing uses the Poly-1 closed form (``poly1_class_sum``)."""
    return class_weight is None and spec.gamma == 0.0 and len(spec.epsilons) == 1


def _chunk_logits(h: Tensor, weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``h W^T + b`` for one chunk, in the compute dtype (a low-precision GEMM accumulates in fp32)."""
    z = torch.mm(h, weight.t()) if bias is None else torch.addmm(bias, h, weight.t())
    return z if z.dtype == dtype else z.to(dtype)


def _softmax_(z: Tensor, keep_log_p: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(lse, p, log_p)`` of one chunk; ``p`` overwrites ``z`` (one chunk-sized buffer, none for log_p unless asked)."""
    row_max = z.amax(1, keepdim=True)
    shifted = z.sub_(row_max)
    e = shifted.exp() if keep_log_p else shifted.exp_()
    total = e.sum(1, keepdim=True)
    log_total = total.log()
    lse = (row_max + log_total).squeeze(1)
    log_p = shifted.sub_(log_total) if keep_log_p else None
    return lse, e.div_(total), log_p


def _chunk_forward(
    z: Tensor, y: Tensor, coeff: Tensor, spec: PolySpec, class_weight: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Per-token loss and the coefficients of its logit gradient, for one chunk of logits ``z`` (overwritten).

    ``coeff`` is the per-token multiplier (0 for ignored tokens, ``spec``'s scalar
    alpha otherwise). The gradient is ``a p - k onehot(y) - b`` plus, for smoothing
    with a general spec, ``extra (u - p sum u)`` (see ``_chunk_grad``).
    Returns ``(loss, p, a, k, b, u)``; ``u`` is ``None`` unless that extra term applies.
    """
    num_classes = z.shape[1]
    s = spec.label_smoothing
    general = bool(s) and not _poly1_smoothing(spec, class_weight)
    z_y = z.gather(1, y.unsqueeze(1)).squeeze(1)
    z_sum = z.sum(1) if s and not general else None
    lse, p, log_p = _softmax_(z, general)
    hard, slope = loss_and_slope(lse - z_y, spec)
    hard_weight = coeff if class_weight is None else coeff * class_weight.index_select(0, y)
    if not s:
        k = hard_weight * slope
        return hard_weight * hard, p, k, k, torch.zeros_like(k), None
    keep, share = smoothing_weights(spec, num_classes)
    k = keep * hard_weight * slope
    loss = keep * hard_weight * hard
    if z_sum is not None:
        # sum_c -log p_c = C lse - sum_c z_c; its gradient is C p - 1.
        class_sum = poly1_class_sum(num_classes * lse - z_sum, spec, num_classes)
        return loss + share * coeff * class_sum, p, k + s * coeff, k, share * coeff, None
    per_class, u = _class_terms(log_p, spec, class_weight)  # type: ignore[arg-type]
    return loss + share * coeff * per_class.sum(1), p, k, k, torch.zeros_like(k), u


def _class_terms(log_p: Tensor, spec: PolySpec, class_weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """``w_c l(p_c)`` and ``w_c u_c`` for every class (label smoothing of a general spec)."""
    per_class, u = class_loss_and_slope(log_p, spec)
    if class_weight is not None:
        per_class, u = per_class * class_weight, u * class_weight
    return per_class, u


def _chunk_grad(
    p: Tensor, y: Tensor, a: Tensor, k: Tensor, b: Tensor, u: Tensor | None, extra: Tensor | None
) -> Tensor:
    """``dL/dz = a p - k onehot(y) - b (+ extra (u - p sum u))`` for one chunk, in place over ``p``."""
    if u is not None and extra is not None:
        u_sum = u.sum(1, keepdim=True)
        grad = p.mul_(a.unsqueeze(1) - (extra.unsqueeze(1) * u_sum)).add_(u * extra.unsqueeze(1))
    else:
        grad = p.mul_(a.unsqueeze(1))
    grad.scatter_add_(1, y.unsqueeze(1), -k.unsqueeze(1))
    return grad.sub_(b.unsqueeze(1))


class FusedLinearPolyLoss(torch.autograd.Function):
    """``sum_i coeff_i l_i`` (or the per-token ``coeff_i l_i``) of ``z = hidden weight^T + bias``, chunk by chunk.

    Inputs: ``hidden`` ``(n, d)``, ``weight`` ``(V, d)``, ``bias`` ``(V,)`` or ``None``,
    ``target`` int64 ``(n,)`` in ``[0, V)``, ``coeff`` ``(n,)`` in the compute dtype
    (0 marks ignored tokens; it also carries the 1 / count of a mean and the
    spec's scalar alpha), ``class_weight`` ``(V,)`` or ``None``, ``plan``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        coeff: Tensor,
        class_weight: Tensor | None,
        plan: Plan,
    ) -> Tensor:
        dtype = coeff.dtype
        n = hidden.shape[0]
        # Empty starts keep torch.cat valid when every token was ignored (no rows at all).
        losses, slopes = [coeff[:0]], [coeff[:0].expand(3, 0)]
        grads = _GradAccumulator(hidden, weight, bias, plan) if plan.eager_grads else None
        for start in range(0, n, plan.rows):
            h = hidden[start : start + plan.rows]
            y = target[start : start + plan.rows]
            z = _chunk_logits(h, weight, bias, dtype)
            loss, p, a, k, b, u = _chunk_forward(z, y, coeff[start : start + plan.rows], plan.spec, class_weight)
            losses.append(loss)
            if grads is not None:
                extra = _extra_scale(plan.spec, coeff[start : start + plan.rows], weight.shape[0], u)
                grads.add(start, h, _chunk_grad(p, y, a, k, b, u, extra))
            elif plan.per_token:
                slopes.append(torch.stack((a, k, b)))
            del z, p, u  # free this chunk before the next one is allocated: one chunk alive, not two
        out = torch.cat(losses) if plan.per_token else torch.cat(losses).sum()
        ctx.plan = plan
        ctx.has_bias = bias is not None
        if grads is not None:
            ctx.save_for_backward(*grads.result())
        elif plan.per_token:
            extras = () if class_weight is None else (class_weight,)
            ctx.save_for_backward(hidden, weight, bias, target, coeff, torch.cat(slopes, 1), *extras)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        plan: Plan = ctx.plan
        if plan.eager_grads:
            # The gradients were formed in the forward; scale them in place (a copy of dW would
            # double the largest tensor of the step). A second backward through this node finds
            # its saved tensors modified and raises, as torch does for any in-place change.
            return (
                *(None if g is None else g.mul_(grad_out.to(g.dtype)) for g in ctx.saved_tensors),
                None,
                None,
                None,
                None,
            )
        hidden, weight, bias, target, coeff, slopes, *rest = ctx.saved_tensors
        class_weight = rest[0] if rest else None
        grads = _GradAccumulator(hidden, weight, bias, plan)
        g = grad_out.to(coeff.dtype)
        a, k, b = slopes * g
        general = bool(plan.spec.label_smoothing) and not _poly1_smoothing(plan.spec, class_weight)
        for start in range(0, hidden.shape[0], plan.rows):
            rows = slice(start, start + plan.rows)
            h, y = hidden[rows], target[rows]
            _, p, log_p = _softmax_(_chunk_logits(h, weight, bias, coeff.dtype), general)
            u = _class_terms(log_p, plan.spec, class_weight)[1] if log_p is not None else None
            extra = _extra_scale(plan.spec, coeff[rows] * g[rows], weight.shape[0], u)
            grads.add(start, h, _chunk_grad(p, y, a[rows], k[rows], b[rows], u, extra))
            del p, log_p, u  # one chunk alive at a time
        dh, dw, db = grads.result()
        return dh, dw, db, None, None, None, None


def _extra_scale(spec: PolySpec, coeff: Tensor, num_classes: int, u: Tensor | None) -> Tensor | None:
    """``coeff s / C``: the weight of the general smoothing term's gradient (``None`` without it)."""
    if u is None:
        return None
    return coeff * smoothing_weights(spec, num_classes)[1]


class _GradAccumulator:
    """``dh``, ``dW``, ``db`` built chunk by chunk; ``dW`` and ``db`` accumulate in float32 or wider."""

    def __init__(self, hidden: Tensor, weight: Tensor, bias: Tensor | None, plan: Plan) -> None:
        acc = hidden.dtype if hidden.dtype in (torch.float32, torch.float64) else torch.float32
        self.dtype = hidden.dtype
        self.dh = torch.empty_like(hidden) if plan.need_hidden else None
        self.dw = torch.zeros(weight.shape, dtype=acc, device=weight.device) if plan.need_weight else None
        self.db = torch.zeros(weight.shape[0], dtype=acc, device=weight.device) if plan.need_bias else None
        self.weight = weight

    def add(self, start: int, h: Tensor, grad: Tensor) -> None:
        g = grad if grad.dtype == self.dtype else grad.to(self.dtype)
        if self.dh is not None:
            self.dh[start : start + h.shape[0]] = torch.mm(g, self.weight)
        if self.dw is not None:
            if self.dw.dtype == g.dtype:
                self.dw.addmm_(g.t(), h)
            else:
                self.dw.add_(torch.mm(g.t(), h))
        if self.db is not None:
            self.db.add_(grad.sum(0))

    def result(self) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        dw = self.dw if self.dw is None or self.dw.dtype == self.dtype else self.dw.to(self.dtype)
        db = self.db if self.db is None or self.db.dtype == self.dtype else self.db.to(self.dtype)
        return self.dh, dw, db
