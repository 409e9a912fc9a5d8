"""The PolyLoss maths written once, with nothing but ``+``, ``*``, ``**`` and a few ``ArrayOps``.

These helpers accept any array type that overloads the arithmetic operators
(NumPy arrays, torch tensors, jax arrays, Keras / TensorFlow tensors), so every
adapter evaluates the same polynomial in the same order. The few operations
that operators cannot spell (``where``, a fused multiply-add, the dtype's
``tiny``) come from the adapter's ``ArrayOps`` object, in the manner of
einops' backends: the algorithm once, a few small operations per framework.
The framework-specific parts (``log_softmax``, gathers, custom gradients) stay
in the adapters.

Decisions made here, once, for every adapter:

* ``loss_from_ce``: the whole family from a cross-entropy ``c = -log p``
  and ``x = 1 - p`` (SPEC section 4), with Poly-1 as one multiply-add;
* ``focal_power``: the one rule that keeps a fractional ``gamma`` finite,
  in value and in every derivative, as ``p -> 1``;
* ``smoothing_weights``, ``poly1_class_sum``, ``smooth_targets``,
  ``smooth_binary_targets``: label smoothing for class indices
  (a decomposition, never a one-hot tensor) and for dense targets;
* ``poly1_dense_sum``, ``poly1_from_row_sums``, ``poly1_of_log_p``: Poly-1
  from the quantities the fast paths already hold (dense targets' row sums of
  the gradient's upstream or over shifted logits; log-probabilities that a
  negative-log-likelihood kernel reads at the target);
* ``alpha_parts`` and ``sigmoid_alpha_t``: what ``spec.alpha`` means in
  each family;
* ``sigmoid_slope``: the sigmoid family's gradient in closed form, for the
  adapters' custom-gradient routes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .spec import PolySpec

__all__ = [
    "ArrayOps",
    "NUMPY_OPS",
    "alpha_parts",
    "focal_factor",
    "focal_power",
    "horner",
    "is_poly1",
    "loss_from_ce",
    "needs_power_guard",
    "poly1_class_sum",
    "poly1_dense_sum",
    "poly1_from_row_sums",
    "poly1_of_log_p",
    "poly_loss_from_log_prob",
    "polynomial_term",
    "power_guard_threshold",
    "sigmoid_alpha_t",
    "sigmoid_loss",
    "sigmoid_one_minus_p_t",
    "sigmoid_slope",
    "sigmoid_slope_applies",
    "smooth_binary_targets",
    "smooth_targets",
    "smoothing_weights",
]

T = TypeVar("T")


def horner(x: Any, coefficients: Sequence[float]) -> Any:
    """``sum_{j=1..N} c_j x^j`` by Horner's rule (``N`` multiplications, no powers).

    Returns the Python float ``0.0`` when ``coefficients`` is empty.

    Examples:
        >>> horner(2.0, [1.0, 0.5])  # 1*2 + 0.5*4
        4.0
    """
    if not coefficients:
        return 0.0
    acc: Any = float(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = acc * x + float(c)
    return acc * x


def focal_factor(one_minus_p: T, gamma: float) -> T | float:
    """``(1 - p)^gamma``; the Python float ``1.0`` when ``gamma == 0``."""
    if gamma == 0:
        return 1.0
    if gamma == 1:
        return one_minus_p
    if gamma == 2:
        return one_minus_p * one_minus_p  # type: ignore[operator,no-any-return]
    return one_minus_p**gamma  # type: ignore[operator,no-any-return]


def polynomial_term(one_minus_p: Any, spec: PolySpec) -> Any:
    """``sum_j eps_j (1 - p)^(j + gamma)``: what PolyLoss adds to CE / focal loss.

    Returns the Python float ``0.0`` for a spec without epsilons.

    Examples:
        >>> polynomial_term(0.5, PolySpec.poly1(epsilon=2.0))
        1.0
    """
    if not any(spec.epsilons):
        return 0.0
    series = horner(one_minus_p, spec.epsilons)
    return series if spec.gamma == 0 else series * focal_factor(one_minus_p, spec.gamma)


def poly_loss_from_log_prob(log_p: Any, one_minus_p: Any, spec: PolySpec) -> Any:
    """``l(p) = -(1 - p)^gamma log p + sum_j eps_j (1 - p)^(j + gamma)``.

    ``log_p`` and ``one_minus_p`` must describe the same ``p``; callers compute
    ``one_minus_p = -expm1(log_p)`` (or ``sigmoid(-z)``) so it stays accurate
    as ``p -> 1``.

    Examples:
        >>> import math
        >>> round(poly_loss_from_log_prob(math.log(0.5), 0.5, PolySpec.poly1(1.0)), 6)
        1.193147
    """
    base = -log_p if spec.gamma == 0 else -(focal_factor(one_minus_p, spec.gamma) * log_p)
    return base + polynomial_term(one_minus_p, spec) if any(spec.epsilons) else base


# --------------------------------------------------------------------------- per-framework operations
def _add_scaled(a: Any, b: Any, alpha: Any) -> Any:
    return a + alpha * b


def _no_sigmoid(x: Any) -> Any:
    raise NotImplementedError("this ArrayOps has no sigmoid (the softmax family needs none)")


def _no_expm1(x: Any, alpha: Any) -> Any:
    raise NotImplementedError("this ArrayOps has no scaled_expm1 (only poly1_of_log_p needs it)")


@dataclass(frozen=True)
class ArrayOps:
    """The few array operations the core maths needs beyond ``+ - * **``, as one framework spells them.

    Each adapter builds one instance (``OPS`` in its ``_ops.py``) from its own
    functions and passes it to ``loss_from_ce``, ``focal_power`` and the sigmoid
    helpers, in the manner of einops' backends.

    Args:
        where: elementwise ``a if condition else b``, called ``where(condition, a, b)``.
        tiny: the smallest positive normal number of an array's dtype, as a Python float.
        sigmoid: elementwise ``1 / (1 + exp(-x))``; only the sigmoid helpers call it.
            Default: none (calling it raises ``NotImplementedError``).
        add_scaled: ``a + alpha * b``; an adapter may give a fused kernel
            (torch's ``torch.add(a, b, alpha=...)``). Default: the operators.
        scaled_expm1: ``alpha * (exp(x) - 1)`` for ``x <= 0`` without cancellation
            near 0 (torch's ``F.elu(x, alpha)`` is one kernel); only
            ``poly1_of_log_p`` calls it. Default: none (calling it raises
            ``NotImplementedError``).
    """

    where: Callable[[Any, Any, Any], Any]
    tiny: Callable[[Any], float]
    sigmoid: Callable[[Any], Any] = _no_sigmoid
    add_scaled: Callable[[Any, Any, Any], Any] = _add_scaled
    scaled_expm1: Callable[[Any, Any], Any] = _no_expm1


def _numpy_tiny(x: Any) -> float:
    dtype = np.result_type(x)
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).tiny)


NUMPY_OPS = ArrayOps(
    where=np.where,
    tiny=_numpy_tiny,
    sigmoid=lambda x: np.exp(-np.logaddexp(0.0, -np.asarray(x))),  # no cancellation for large |x|
    scaled_expm1=lambda x, alpha: alpha * np.expm1(x),
)
"""``ArrayOps`` for NumPy arrays (the core's own tests and the CLI's curves)."""


def is_poly1(spec: PolySpec) -> bool:
    """Whether ``spec`` is Poly-1 (one epsilon, ``gamma = 0``): the form every adapter's fast paths serve.

    Examples:
        >>> is_poly1(PolySpec.poly1(2.0)), is_poly1(PolySpec.poly1_focal(1.0, gamma=2.0))
        (True, False)
    """
    return spec.gamma == 0.0 and len(spec.epsilons) == 1


# --------------------------------------------------------------------------- the fractional-gamma rule
def needs_power_guard(gamma: float) -> bool:
    """Whether ``x^gamma`` needs ``focal_power``'s guard: every non-integer ``gamma > 0``.

    For a non-integer ``gamma`` the ``k``-th derivative of ``x^gamma`` is infinite
    at ``x = 0`` for every ``k > gamma`` (the first for ``gamma < 1``, the second
    for ``1 < gamma < 2``, ...), and ``x = 1 - p_t`` *is* 0 in floating point for
    every confident example. Integer powers are polynomials and need nothing.

    Examples:
        >>> needs_power_guard(2.0), needs_power_guard(1.5), needs_power_guard(0.0)
        (False, True, False)
    """
    return gamma > 0 and gamma != math.floor(gamma)


def power_guard_threshold(tiny: float) -> float:
    """``sqrt(tiny)``: below it, ``focal_power`` returns exactly 0.

    At ``x = sqrt(tiny)`` the second derivative ``gamma (gamma - 1) x^(gamma - 2)``
    is at most ``tiny^-1`` (finite in every float format), and the loss dropped
    below it, about ``x^(1 + gamma)``, is far below the dtype's resolution of any
    loss one would sum it with.

    Examples:
        >>> power_guard_threshold(4.0)
        2.0
    """
    return math.sqrt(tiny)


def focal_power(x: Any, gamma: float, ops: ArrayOps) -> Any:
    """``x^gamma`` for ``x = 1 - p >= 0``, finite in value and in every derivative. The one rule.

    * ``gamma == 0``: the Python float ``1.0``; ``gamma`` 1 and 2: ``x`` and ``x * x``.
    * other integers: ``x ** gamma`` (a polynomial).
    * non-integer ``gamma``: a double ``where``. Entries with
      ``x <= sqrt(tiny)`` (``power_guard_threshold``) are evaluated at
      ``x = 1`` and then replaced by 0, so neither the value nor any derivative
      of any order sees ``0^(gamma - k)``; entries above the threshold get the
      exact power. Autograd, ``jax.grad`` / ``jax.hessian`` and
      ``tf.GradientTape`` all differentiate a ``where`` into a ``where``, so the
      masked entries get exactly 0 and no ``inf * 0 = nan``.

    Examples:
        >>> import numpy as np
        >>> focal_power(np.array([0.0, 1e-200, 0.25]), 0.5, NUMPY_OPS).tolist()
        [0.0, 0.0, 0.5]
    """
    if not needs_power_guard(gamma):
        return focal_factor(x, gamma)
    keep = x > power_guard_threshold(ops.tiny(x))
    safe = ops.where(keep, x, 1.0)
    return ops.where(keep, safe**gamma, 0.0)


# --------------------------------------------------------------------------- the family from a cross-entropy
def loss_from_ce(ce: Any, one_minus_p: Any, spec: PolySpec, ops: ArrayOps, *, epsilon: Any = None) -> Any:
    """``ce (1 - p)^gamma + sum_j eps_j (1 - p)^(j + gamma)``: every member of the family from a cross-entropy.

    For a hard label ``ce = -log p_t`` and ``1 - p_t = -expm1(-ce)`` exactly
    (SPEC section 4), so the polynomial costs a few elementwise operations on top
    of the framework's own fused cross-entropy. For the sigmoid family ``ce`` is
    ``BCE(z, t)`` and ``one_minus_p`` is ``1 - p_t`` (SPEC section 3). For a
    per-class loss (soft targets) ``ce = -log p_c`` and ``one_minus_p = 1 - p_c``.

    Poly-1 (``gamma = 0``, one epsilon) is ``ops.add_scaled(ce, one_minus_p, eps)``,
    one fused multiply-add where the framework has one. A non-integer ``gamma``
    goes through ``focal_power``.

    Args:
        ce: the cross-entropy ``-log p`` (or BCE), any array type.
        one_minus_p: ``1 - p`` for the same ``p``, computed without cancellation.
        spec: the loss; only ``epsilons`` and ``gamma`` are used here (weights
            and smoothing are applied by the caller).
        ops: the adapter's ``ArrayOps``.
        epsilon: optional replacement for ``eps_1`` that may be an array (a traced
            JAX value, for ``vmap`` over epsilons or a schedule under ``jit``); the
            spec's other epsilons still apply.

    Returns:
        The per-element loss, the arrays' type.

    Examples:
        >>> import numpy as np
        >>> ce = np.array([0.5])
        >>> loss_from_ce(ce, -np.expm1(-ce), PolySpec.poly1(2.0), NUMPY_OPS).round(6).tolist()
        [1.286939]
    """
    epsilons: Sequence[Any] = spec.epsilons
    if epsilon is not None:
        epsilons = (epsilon, *spec.epsilons[1:]) if spec.epsilons else (epsilon,)
    if spec.gamma == 0.0 and len(epsilons) == 1:
        return ops.add_scaled(ce, one_minus_p, epsilons[0])
    factor = focal_power(one_minus_p, spec.gamma, ops)
    base = ce if isinstance(factor, float) else ce * factor
    if not epsilons or (epsilon is None and not any(spec.epsilons)):
        return base
    series = horner(one_minus_p, epsilons) if epsilon is None else _horner_any(one_minus_p, epsilons)
    return base + (series if isinstance(factor, float) else series * factor)


def _horner_any(x: Any, coefficients: Sequence[Any]) -> Any:
    """``horner`` for coefficients that may be arrays (no ``float()`` on them)."""
    acc: Any = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * x + c
    return acc * x


# --------------------------------------------------------------------------- label smoothing
def smoothing_weights(spec: PolySpec, num_classes: int) -> tuple[float, float]:
    """``(1 - s, s / C)``: smoothed class indices as weights of two losses.

    With ``q' = (1 - s) onehot(y) + s / C`` the softmax loss ``sum_c w_c q'_c l(p_c)``
    is ``(1 - s) w_y l(p_y) + (s / C) sum_c w_c l(p_c)``: the hard-label loss plus a
    sum over classes, with no one-hot tensor. Every adapter builds smoothed
    class-index losses this way.

    Examples:
        >>> smoothing_weights(PolySpec.poly1(label_smoothing=0.1), 4)
        (0.9, 0.025)
    """
    s = spec.label_smoothing
    return 1.0 - s, s / num_classes


def poly1_class_sum(neg_log_p_sum: Any, spec: PolySpec, num_classes: int, *, epsilon: Any = None) -> Any:
    """``sum_c l(p_c)`` for Poly-1 without class weights: ``sum_c -log p_c + eps (C - 1)``.

    Because the probabilities sum to 1, ``sum_c eps (1 - p_c) = eps (C - 1)``: the
    smoothed Poly-1 needs the sum of the log-probabilities and nothing per class.
    Only for ``gamma = 0`` and one epsilon (``epsilon`` may replace it, as in
    ``loss_from_ce``).

    Examples:
        >>> poly1_class_sum(3.0, PolySpec.poly1(2.0), 4)
        9.0
    """
    eps = spec.epsilons[0] if epsilon is None else epsilon
    return neg_log_p_sum + eps * (num_classes - 1)


def poly1_of_log_p(log_p: Any, spec: PolySpec, ops: ArrayOps, *, epsilon: Any = None) -> Any:
    """Minus Poly-1's loss of every class from its log-probability: ``log p + eps expm1(log p)``.

    Poly-1 is linear in ``(ce, 1 - p)`` (``loss_from_ce``), so with ``ce = -log p``
    and ``1 - p = -expm1(log p)`` its per-class loss is minus this. An adapter that
    picks the target's entry with its negative-log-likelihood kernel (which also
    applies ignored targets, class weights and the weighted mean) gets the
    class-index loss in one more kernel, ``ops.scaled_expm1``. Only for
    ``gamma = 0`` and one epsilon (``epsilon`` may replace it, as in ``loss_from_ce``).

    Examples:
        >>> import numpy as np
        >>> -poly1_of_log_p(np.log(np.array([0.5])), PolySpec.poly1(2.0), NUMPY_OPS).round(6)
        array([1.693147])
    """
    eps = spec.epsilons[0] if epsilon is None else epsilon
    return log_p + ops.scaled_expm1(log_p, eps)


def poly1_from_row_sums(
    log_exp_sum: Any, overlap: Any, shifted_sum: Any, total: Any, spec: PolySpec, ops: ArrayOps, *, epsilon: Any = None
) -> Any:
    """Poly-1 of dense targets ``q`` from row sums over logits shifted by their row maximum ``m``.

    With ``e = exp(z - m)``: ``log_exp_sum = log sum_c e_c``, ``overlap = sum_c q_c e_c / sum_c e_c``
    (``T = sum_c q_c p_c``), ``shifted_sum = sum_c q_c (z_c - m)`` and ``total = sum_c q_c`` (``S``).
    The cross-entropy ``S log sum e - sum q (z - m)`` is two non-negative terms (no cancellation at
    large logits), and ``sum_c q_c (1 - p_c) = S - T``; the rest is ``loss_from_ce``. For adapters that
    take these sums in one pass over the logits. Only for ``gamma = 0`` and one epsilon.

    Examples:
        >>> import numpy as np
        >>> z, q = np.array([2.0, 0.0]), np.array([1.0, 0.0])
        >>> e = np.exp(z - z.max())
        >>> out = poly1_from_row_sums(np.log(e.sum()), (q * e).sum() / e.sum(), (q * (z - 2.0)).sum(), 1.0,
        ...                           PolySpec.poly1(1.0), NUMPY_OPS)
        >>> round(float(out), 6)  # -log p_0 + (1 - p_0), p_0 = sigmoid(2)
        0.246131
    """
    return loss_from_ce(total * log_exp_sum - shifted_sum, total - overlap, spec, ops, epsilon=epsilon)


def poly1_dense_sum(ce: Any, total: Any, upstream_sum: Any, spec: PolySpec, *, epsilon: Any = None) -> Any:
    """Poly-1 of dense targets ``r`` from the sums its gradient needs: ``ce + (1 + eps) S - U``.

    With ``S = sum_c r_c``, ``T = sum_c r_c p_c`` and ``U = sum_c r_c (1 + eps p_c)
    = S + eps T``, Poly-1's ``ce + eps (S - T)`` equals ``ce + (1 + eps) S - U``.
    ``U`` is the row sum of the gradient's upstream ``r (1 + eps p)``, so an adapter
    that forms that tensor once gets the value and the gradient's row factor
    ``S + eps T`` from one reduction. Only for ``gamma = 0`` and one epsilon
    (``epsilon`` may replace it, as in ``loss_from_ce``).

    Examples:
        >>> poly1_dense_sum(1.0, 1.0, 1.5, PolySpec.poly1(1.0))  # T = 0.5: 1 + 1 (1 - 0.5)
        1.5
    """
    eps = spec.epsilons[0] if epsilon is None else epsilon
    return ce + (1.0 + eps) * total - upstream_sum


def smooth_targets(q: Any, spec: PolySpec, num_classes: int) -> Any:
    """``(1 - s) q + s / C`` for dense (probability) targets; ``q`` itself when ``s = 0``."""
    s = spec.label_smoothing
    return q if not s else (1.0 - s) * q + s / num_classes


def smooth_binary_targets(t: Any, spec: PolySpec) -> Any:
    """``(1 - s) t + s / 2`` for sigmoid targets; ``t`` itself when ``s = 0``."""
    s = spec.label_smoothing
    return t if not s else (1.0 - s) * t + 0.5 * s


# --------------------------------------------------------------------------- weights
def alpha_parts(spec: PolySpec) -> tuple[float, tuple[float, ...] | None]:
    """Softmax ``spec.alpha`` as ``(scalar, per_class)``: a number scales every class, a tuple weighs each.

    The adapter multiplies its own per-class ``weight`` (torch) with
    ``per_class`` and the loss with ``scalar``.

    Examples:
        >>> alpha_parts(PolySpec(alpha=0.5)), alpha_parts(PolySpec(alpha=(1.0, 2.0)))
        ((0.5, None), (1.0, (1.0, 2.0)))
    """
    if isinstance(spec.alpha, tuple):
        return 1.0, spec.alpha
    return (1.0 if spec.alpha is None else float(spec.alpha)), None


def sigmoid_alpha_t(t: Any, alpha: float | None) -> Any:
    """``alpha_t = alpha t + (1 - alpha)(1 - t)`` as ``(1 - alpha) + (2 alpha - 1) t``; ``None`` for no alpha.

    Examples:
        >>> sigmoid_alpha_t(1.0, 0.25), sigmoid_alpha_t(0.0, 0.25)
        (0.25, 0.75)
    """
    if alpha is None:
        return None
    return (1.0 - alpha) + (2.0 * alpha - 1.0) * t


# --------------------------------------------------------------------------- the sigmoid family
def sigmoid_one_minus_p_t(z: Any, t: Any, ops: ArrayOps, *, p_and_q: tuple[Any, Any] | None = None) -> Any:
    """``1 - p_t = t sigmoid(-z) + (1 - t) sigmoid(z)`` from logits: two non-negative terms, no cancellation.

    ``p_and_q``: ``(sigmoid(z), sigmoid(-z))`` where the caller has them already
    (then ``z`` and ``ops`` are not used).

    Examples:
        >>> import numpy as np
        >>> sigmoid_one_minus_p_t(np.array([0.0, 40.0]), np.array([1.0, 1.0]), NUMPY_OPS).tolist()
        [0.5, 4.248354255291589e-18]
    """
    p, q = (ops.sigmoid(z), ops.sigmoid(-z)) if p_and_q is None else p_and_q
    return t * q + (1.0 - t) * p


def sigmoid_loss(bce: Any, t: Any, spec: PolySpec, ops: ArrayOps, one_minus_p_t: Any, *, epsilon: Any = None) -> Any:
    """``alpha_t (BCE (1 - p_t)^gamma + sum_j eps_j (1 - p_t)^(j + gamma))`` per element (SPEC section 3).

    ``t`` are the (already smoothed) targets; ``one_minus_p_t`` is a function
    returning ``1 - p_t``, called only when the spec needs it (not for plain
    binary cross-entropy); ``epsilon`` as in ``loss_from_ce``. ``alpha_t``
    scales the polynomial terms too.

    Examples:
        >>> import numpy as np
        >>> bce, t = np.array([0.5]), np.array([1.0])
        >>> sigmoid_loss(bce, t, PolySpec.poly1(1.0), NUMPY_OPS, lambda: -np.expm1(-bce)).round(6).tolist()
        [0.893469]
    """
    loss = (
        bce
        if epsilon is None and spec.is_cross_entropy
        else loss_from_ce(bce, one_minus_p_t(), spec, ops, epsilon=epsilon)
    )
    return _times_alpha_t(loss, t, spec)


def _times_alpha_t(value: Any, t: Any, spec: PolySpec) -> Any:
    """``value * alpha_t`` for the sigmoid family's scalar ``spec.alpha``; ``value`` itself without one."""
    alpha_t = sigmoid_alpha_t(t, None if spec.alpha is None else float(spec.alpha))  # type: ignore[arg-type]
    return value if alpha_t is None else value * alpha_t


def sigmoid_slope_applies(spec: PolySpec) -> bool:
    """Whether ``sigmoid_slope`` covers ``spec``: an integer ``gamma >= 0`` and at most one epsilon.

    Examples:
        >>> sigmoid_slope_applies(PolySpec.poly1_focal(1.0, 2.0)), sigmoid_slope_applies(PolySpec.focal(1.5))
        (True, False)
    """
    return spec.gamma == math.floor(spec.gamma) and len(spec.epsilons) <= 1


def sigmoid_slope(bce: Any, x: Any, p: Any, q: Any, t: Any, spec: PolySpec, *, epsilon: Any = None) -> Any:
    """``d loss / d z`` of ``sigmoid_loss`` per element, for a spec where ``sigmoid_slope_applies``.

    With ``p = sigmoid(z)``, ``q = sigmoid(-z)`` (both accurate, ``p + q = 1``),
    ``x = 1 - p_t``, ``g = gamma`` and one ``eps``::

        d loss / d z = alpha_t x^(g-1) ((p - t) x + (g BCE + eps (g + 1) x) (1 - 2t) p q)

    (for ``g = 0``: ``alpha_t ((p - t) + eps (1 - 2t) p q)``), with ``p - t``
    written ``x - 2 t q``, exact for 0/1 targets. Targets may be soft (``d x / d z =
    (1 - 2t) p q`` holds for any ``t``). ``epsilon`` replaces the spec's one
    epsilon, as in ``loss_from_ce``.

    Examples:
        >>> import numpy as np
        >>> z, t = np.array([0.0]), np.array([1.0])
        >>> p = q = np.array([0.5])
        >>> bce, x = np.log(2.0) * np.ones(1), np.array([0.5])
        >>> sigmoid_slope(bce, x, p, q, t, PolySpec.poly1(1.0)).tolist()  # -(1/2) - 1/4
        [-0.75]
    """
    eps = (spec.epsilons[0] if spec.epsilons else 0.0) if epsilon is None else epsilon
    gamma = int(spec.gamma)
    p_minus_t = x - 2.0 * t * q
    dx_dz = (1.0 - 2.0 * t) * p * q
    if gamma == 0:
        slope = p_minus_t + eps * dx_dz
    else:
        slope = p_minus_t * x + (gamma * bce + (eps * (gamma + 1)) * x) * dx_dz
        if gamma > 1:
            slope = slope * (x if gamma == 2 else x ** (gamma - 1))
    return _times_alpha_t(slope, t, spec)
