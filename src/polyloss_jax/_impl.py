"""The maths on validated arrays and a validated spec: softmax with indices, with dense targets, sigmoid.

``epsilon`` is ``None`` (use the spec's) or a 0-d array replacing ``eps_1``
(a traced epsilon of a Poly-1 function). The polynomial comes from
``polyloss_core.series``; this module adds log-probabilities, the label
gather, the soft-target custom derivative, masks and layouts.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from polyloss_core import PolySpec, poly1_spec, series

from ._ops import OPS

POLY1 = poly1_spec()  # Poly-1 of probability targets: its epsilon is replaced per call (soft_poly1)


def _zero(x: jax.Array) -> jax.Array:
    return jnp.zeros((), x.dtype)


# --------------------------------------------------------------------------- softmax family
def softmax(
    z: jax.Array, y: jax.Array, spec: PolySpec, axes: tuple[int, ...], mask: jax.Array | None, epsilon: Any
) -> jax.Array:
    """Per-example loss; integer ``y`` are class indices, floating ``y`` distributions broadcastable to ``z``."""
    integer = jnp.issubdtype(y.dtype, jnp.integer)
    if integer and jnp.iinfo(y.dtype).bits < 32:
        y = y.astype(jnp.int32)  # so that comparisons with the class count cannot overflow
    ax = axes[0]
    if len(axes) > 1:  # optax's layout: the class axes moved to the end and flattened into one
        batch = tuple(d for d in range(z.ndim) if d not in axes)
        lead = tuple(z.shape[d] for d in batch)

        def flat(a: jax.Array) -> jax.Array:
            return jnp.broadcast_to(a, z.shape).transpose(batch + axes).reshape((*lead, -1))

        z, y, mask = flat(z), y if integer else flat(y), None if mask is None else flat(mask)
        ax = z.ndim - 1
    row_kept = None
    if mask is not None:
        # Examples with every class masked are evaluated unmasked (finite values and gradients), zeroed at the end.
        row_kept = jnp.any(mask, axis=ax, keepdims=True)
        mask = mask | ~row_kept
    scale, per_class = series.alpha_parts(spec)
    weights = None if per_class is None else jnp.asarray(per_class, z.dtype)
    if integer:
        loss = _indices(z, y, spec, ax, mask, weights, epsilon)
    else:
        loss = _dense(z, y.astype(z.dtype), spec, ax, mask, weights, epsilon)
    if scale != 1.0:
        loss = loss * scale
    return loss if row_kept is None else jnp.where(jnp.squeeze(row_kept, ax), loss, _zero(loss))


def _indices(z: jax.Array, y: jax.Array, spec: PolySpec, ax: int, mask: Any, weights: Any, epsilon: Any) -> jax.Array:
    """Hard labels: optax's ``logsumexp(z) - z_y``; every member is elementwise in it (SPEC section 4)."""
    num_classes = z.shape[ax]
    label_logit = _label_logit(z, y, ax)
    log_normalizer = jax.nn.logsumexp(z, axis=ax, where=mask)
    ce = log_normalizer - label_logit
    loss = series.loss_from_ce(ce, -jnp.expm1(-ce), spec, OPS, epsilon=epsilon)
    if weights is not None:
        loss = loss * jnp.take(weights, y, mode="clip")
    if spec.label_smoothing:
        keep, share = series.smoothing_weights(spec, num_classes)
        log_p = z - jnp.expand_dims(log_normalizer, ax)
        if series.is_poly1(spec) and weights is None and mask is None:
            uniform = series.poly1_class_sum(-jnp.sum(log_p, axis=ax), spec, num_classes, epsilon=epsilon)
        else:
            uniform = jnp.sum(_per_class(log_p, spec, ax, mask, weights, epsilon), axis=ax, where=mask)
        loss = keep * loss + share * uniform
    valid = (y >= 0) & (y < num_classes)
    return jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))


def _label_logit(z: jax.Array, y: jax.Array, ax: int) -> jax.Array:
    """``z`` at class ``y``: a gather, or a masked sum where the class axis is sharded explicitly.

    Under ``Explicit`` mesh axes (``jax.make_mesh``'s default) a gather from an axis split
    over devices cannot name its output's sharding; comparing a class iota with the label
    keeps every device on its own classes and ends in one sum across them.
    """
    spec = getattr(jax.typeof(z).sharding, "spec", None)
    if spec is not None and len(spec) > ax and spec[ax] is not None:
        hit = jax.lax.broadcasted_iota(y.dtype, z.shape, ax) == jnp.expand_dims(y, ax)
        return jnp.sum(jnp.where(hit, z, _zero(z)), axis=ax)
    return jnp.take_along_axis(z, jnp.expand_dims(y, ax), axis=ax, mode="clip").squeeze(ax)


def _per_class(log_p: jax.Array, spec: PolySpec, ax: int, mask: Any, weights: Any, epsilon: Any) -> jax.Array:
    """``w_c l(p_c)`` for every class; masked classes get ``p = 1``, so nothing non-finite reaches the maths."""
    if mask is not None:
        log_p = jnp.where(mask, log_p, _zero(log_p))
    loss = series.loss_from_ce(-log_p, -jnp.expm1(log_p), spec, OPS, epsilon=epsilon)
    return loss if weights is None else loss * weights.reshape([-1 if d == ax else 1 for d in range(log_p.ndim)])


def _dense(z: jax.Array, q: jax.Array, spec: PolySpec, ax: int, mask: Any, weights: Any, epsilon: Any) -> jax.Array:
    """Probability targets: the fused Poly-1 (``soft_poly1``) or ``sum_c w_c q'_c l(p_c)``."""
    q = series.smooth_targets(q, spec, z.shape[ax])
    if series.is_poly1(spec) and weights is None and mask is None:
        eps = jnp.asarray(spec.epsilons[0] if epsilon is None else epsilon, z.dtype)
        return soft_poly1(z, jnp.broadcast_to(q, z.shape), eps, ax)
    # z - logsumexp(z) rather than jax.nn.log_softmax: the same values, a cheaper reverse pass on CPU.
    log_p = z - jax.nn.logsumexp(z, axis=ax, where=mask, keepdims=True)
    return jnp.sum(q * _per_class(log_p, spec, ax, mask, weights, epsilon), axis=ax, where=mask)


# --------------------------------------------------------------------------- Poly-1, probability targets
def _one_pass(num_classes: int) -> bool:
    """Whether the variadic reduce wins: few classes per row (XLA's vectorised reductions have little to
    vectorise) or rows too long for the cache (one pass instead of four); see docs/benchmarks.md."""
    return num_classes <= 32 or num_classes >= 4096


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _row_stats(z: jax.Array, q: jax.Array, ax: int) -> tuple[jax.Array, ...]:
    """``m = max z`` and, in ONE pass over the classes (a variadic reduce), with ``e = exp(z - m)``:
    ``sum e``, ``sum q e``, ``sum q (z - m)``, ``sum q``. ``m`` acts as a constant (the loss does not
    depend on it), so its derivative is 0."""
    m = jnp.max(z, axis=ax, keepdims=True)
    shifted = z - m
    exp = jnp.exp(shifted)
    zero = jnp.zeros((), z.dtype)
    sums = jax.lax.reduce(
        (exp, q * exp, q * shifted, q), (zero,) * 4, lambda a, b: tuple(x + y for x, y in zip(a, b, strict=True)), (ax,)
    )
    return (m, *sums)


@functools.partial(_row_stats.defjvp, symbolic_zeros=True)
def _row_stats_jvp(ax: int, primals: tuple[jax.Array, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    # Ordinary JAX: only higher-order derivatives of soft_poly1 come through here.
    z, q = primals
    dz, dq = (jnp.zeros_like(z) if isinstance(t, jax.custom_derivatives.SymbolicZero) else t for t in tangents)
    out = _row_stats(z, q, ax)
    shifted = z - out[0]
    exp = jnp.exp(shifted)
    ds = (exp * dz, q * exp * dz + exp * dq, q * dz + shifted * dq, dq)
    return out, (jnp.zeros_like(out[0]), *(jnp.sum(d, axis=ax) for d in ds))


def _plain_row_stats(z: jax.Array, q: jax.Array, ax: int) -> tuple[jax.Array, ...]:
    """What ``_row_stats`` returns, as four vectorised reductions (faster on CPU for 33-4095 classes)."""
    m = jax.lax.stop_gradient(jnp.max(z, axis=ax, keepdims=True))
    shifted = z - m
    exp = jnp.exp(shifted)
    return m, jnp.sum(exp, axis=ax), jnp.sum(q * exp, axis=ax), jnp.sum(q * shifted, axis=ax), jnp.sum(q, axis=ax)


def _soft_poly1_parts(z: jax.Array, q: jax.Array, eps: jax.Array, ax: int) -> tuple[jax.Array, ...]:
    """The loss, ``log sum exp z`` (kept axis) and ``A = sum_c q_c (1 + eps p_c)``, from ``_row_stats``."""
    m, total, qe_sum, qshift_sum, q_sum = (_row_stats if _one_pass(z.shape[ax]) else _plain_row_stats)(z, q, ax)
    log_total, qp_sum = jnp.log(total), qe_sum / total
    loss = series.poly1_from_row_sums(log_total, qp_sum, qshift_sum, q_sum, POLY1, OPS, epsilon=eps)
    return loss, m + jnp.expand_dims(log_total, ax), q_sum + eps * qp_sum, q_sum - qp_sum


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def soft_poly1(z: jax.Array, q: jax.Array, eps: jax.Array, ax: int) -> jax.Array:
    """``sum_c q_c (-log p_c + eps (1 - p_c))`` from one pass of row sums, with an elementwise derivative.

    ``dL/dz_j = p_j sum_c q_c (1 + eps p_c) - q_j (1 + eps p_j)``,
    ``dL/dq_c = -log p_c + eps (1 - p_c)``, ``dL/deps = sum_c q_c (1 - p_c)``
    (SPEC section 4); ``p`` is recomputed from ``z`` and ``log sum exp z``, so
    nothing of the classes' size is kept between the passes. A ``custom_jvp``
    whose rule is ordinary JAX code: ``jax.hessian`` and forward mode still apply.
    """
    return _soft_poly1_parts(z, q, eps, ax)[0]


@functools.partial(soft_poly1.defjvp, symbolic_zeros=True)
def _soft_poly1_jvp(ax: int, primals: tuple[jax.Array, ...], tangents: tuple[Any, ...]) -> tuple[jax.Array, Any]:
    z, q, eps = primals
    dz, dq, deps = tangents
    out, lse, weight_sum, poly = _soft_poly1_parts(z, q, eps, ax)
    terms = []
    if not isinstance(dz, jax.custom_derivatives.SymbolicZero):
        p = jnp.exp(z - lse)
        grad = p * jnp.expand_dims(weight_sum, ax) - q * (1.0 + eps * p)
        terms.append(jnp.sum(grad * dz, axis=ax))
    if not isinstance(dq, jax.custom_derivatives.SymbolicZero):
        log_p = z - lse
        terms.append(jnp.sum((eps * (1.0 - jnp.exp(log_p)) - log_p) * dq, axis=ax))
    if not isinstance(deps, jax.custom_derivatives.SymbolicZero):
        terms.append(poly * deps)
    tangent = functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(out)
    return out, tangent


# --------------------------------------------------------------------------- sigmoid family
def sigmoid(
    z: jax.Array, y: jax.Array, spec: PolySpec, axes: tuple[int, ...], mask: Any, epsilon: Any, one_hot: bool
) -> jax.Array:
    """Per-element loss (SPEC section 3); ``one_hot``: ``y`` are class indices, one-hot along ``axes``."""
    valid: jax.Array | None
    if one_hot:
        t, valid = _one_hot(y.astype(jnp.int32) if jnp.iinfo(y.dtype).bits < 32 else y, z, axes)
    else:
        t = y.astype(z.dtype)
        valid = None if y.dtype == jnp.bool_ else (t >= 0) & (t <= 1)
    t = series.smooth_binary_targets(t, spec)
    bce = -(t * jax.nn.log_sigmoid(z) + (1.0 - t) * jax.nn.log_sigmoid(-z))
    loss = series.sigmoid_loss(bce, t, spec, OPS, lambda: series.sigmoid_one_minus_p_t(z, t, OPS), epsilon=epsilon)
    loss = jnp.broadcast_to(loss, z.shape)
    if valid is not None:
        loss = jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))
    return loss if mask is None else jnp.where(mask, loss, _zero(loss))


def _one_hot(y: jax.Array, z: jax.Array, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """One-hot targets along ``axes`` (a flat index in the given axis order) and the per-row validity."""
    flat_index: Any = 0
    stride = 1
    for a in reversed(axes):
        shape = [z.shape[d] if d == a else 1 for d in range(z.ndim)]
        flat_index = flat_index + jax.lax.broadcasted_iota(y.dtype, shape, a) * stride
        stride *= z.shape[a]
    expanded = jnp.expand_dims(y, sorted(axes))
    valid = (expanded >= 0) & (expanded < math.prod(z.shape[a] for a in axes))
    return (expanded == flat_index).astype(z.dtype), valid
