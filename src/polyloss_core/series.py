"""The PolyLoss maths written once, with nothing but ``+``, ``*`` and ``**``.

These helpers accept any array type that overloads the arithmetic operators
(NumPy arrays, torch tensors, jax arrays, Keras / TensorFlow tensors), so every
adapter evaluates the same polynomial in the same order. The framework-specific
parts (``log_softmax``, ``expm1``, gathers) stay in the adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from .spec import PolySpec

__all__ = ["focal_factor", "horner", "poly_loss_from_log_prob", "polynomial_term"]

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
