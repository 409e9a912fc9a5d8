"""The one fractional-gamma rule (``series.focal_power`` via ``loss_from_ce``), proven on the reference.

For a hard label the loss is ``l = c x^g + sum_j eps_j x^(j+g)`` with ``c = -log p``
and ``x = 1 - p = -expm1(-c)``. A non-integer ``g`` makes some derivative of
``x^g`` infinite at ``x = 0``; the rule drops every term where ``x <= sqrt(tiny)``
(exactly 0 in value and derivative) and keeps the exact power above it. These
tests use NumPy only: values against ``reference``, derivatives against the
analytic derivative (finite differences in float64 above the threshold).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyloss_core import PolySpec, reference
from polyloss_core.series import NUMPY_OPS, focal_power, loss_from_ce, needs_power_guard, power_guard_threshold

OPS = NUMPY_OPS
GAMMAS = (0.25, 0.5, 1.5, 2.7)
THRESHOLD = power_guard_threshold(float(np.finfo(np.float64).tiny))
# Margins m (a logit with target 1, or two-class logits [m, 0] with label 0): p = sigmoid(m), x = 1 - p ~ e^-m.
# 0 .. 300 keeps x above sqrt(tiny) ~ 1.5e-154 (e^-354); 400, 800 and 1e4 are below it,
# 1e4 is p = 1 exactly (x = 0, c = 0) in float64.
ABOVE = (0.0, 1.0, 5.0, 20.0, 40.0, 100.0, 300.0)
BELOW = (400.0, 800.0, 1e4)


def _core_loss(margin: np.ndarray, spec: PolySpec) -> np.ndarray:
    ce = np.logaddexp(0.0, -margin)  # -log sigmoid(m), accurate for every m
    x = -np.expm1(-ce)
    return np.asarray(loss_from_ce(ce, x, spec, OPS))


def _reference_loss(margin: np.ndarray, spec: PolySpec) -> np.ndarray:
    # The sigmoid reference with target 1 is l(p) at p = sigmoid(m), with 1 - p accurate to e^-745.
    return reference.sigmoid_poly_loss(margin, np.ones_like(margin), spec)


def _reference_grad(margin: np.ndarray, spec: PolySpec) -> np.ndarray:
    return reference.sigmoid_poly_loss_grad(margin, np.ones_like(margin), spec)


def _specs(gamma: float) -> list[PolySpec]:
    return [PolySpec.focal(gamma), PolySpec.poly1_focal(1.0, gamma), PolySpec(epsilons=(2.0, -0.3), gamma=gamma)]


def _dropped_bound(x: np.ndarray, spec: PolySpec) -> np.ndarray:
    """What the guard may drop: about ``(1 + sum |eps_j|) x^(1 + gamma)`` (``c <= x`` for hard labels)."""
    return (1.0 + sum(abs(e) for e in spec.epsilons)) * 2.0 * x ** (1.0 + spec.gamma)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_fractional_gamma_needs_the_guard_and_integers_do_not(gamma: float) -> None:
    assert needs_power_guard(gamma)
    assert not needs_power_guard(math.floor(gamma) + 1.0)
    assert not needs_power_guard(0.0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_power_is_exact_above_the_threshold_and_zero_at_or_below(gamma: float) -> None:
    above = np.array([THRESHOLD * 1.0000001, 1e-100, 1e-8, 0.3, 1.0])
    np.testing.assert_allclose(focal_power(above, gamma, OPS), above**gamma, rtol=1e-15)
    below = np.array([0.0, 1e-300, THRESHOLD * 0.5, THRESHOLD])
    assert np.all(focal_power(below, gamma, OPS) == 0.0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_power_derivatives_are_finite_and_exact(gamma: float) -> None:
    """First and second derivatives (central differences) match the analytic ones above, are 0 below."""
    x = np.array([1e-100, 1e-20, 1e-3, 0.2, 0.7])
    h = x * 1e-5
    first = (focal_power(x + h, gamma, OPS) - focal_power(x - h, gamma, OPS)) / (2 * h)
    np.testing.assert_allclose(first, gamma * x ** (gamma - 1), rtol=1e-8)
    h2 = x * 1e-3
    second = (
        focal_power(x + h2, gamma, OPS) - 2 * focal_power(x, gamma, OPS) + focal_power(x - h2, gamma, OPS)
    ) / h2**2
    np.testing.assert_allclose(second, gamma * (gamma - 1) * x ** (gamma - 2), rtol=1e-5)
    assert np.all(np.isfinite(second))
    # At and below the threshold every difference quotient is exactly 0 (and so finite).
    low = np.array([0.0, 1e-300, THRESHOLD * 0.25])
    step = THRESHOLD * 0.25
    first_low = (focal_power(low + step, gamma, OPS) - focal_power(np.maximum(low - step, 0.0), gamma, OPS)) / step
    assert np.all(first_low == 0.0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_loss_from_ce_matches_the_reference_as_p_goes_to_one(gamma: float) -> None:
    margin = np.array(ABOVE + BELOW)
    for spec in _specs(gamma):
        got = _core_loss(margin, spec)
        want = _reference_loss(margin, spec)
        assert np.all(np.isfinite(got))
        x = -np.expm1(-np.logaddexp(0.0, -margin))
        dropped = np.where(x <= THRESHOLD, _dropped_bound(x, spec), 0.0)
        np.testing.assert_array_less(np.abs(got - want), 1e-13 * np.abs(want) + dropped + 1e-300)
        # Above the threshold the value is the reference's; below it, exactly 0.
        assert np.all(got[len(ABOVE) :] == 0.0)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_loss_from_ce_gradient_matches_the_reference_as_p_goes_to_one(gamma: float) -> None:
    """d loss / d margin by central differences in float64 equals the reference's analytic gradient."""
    for spec in _specs(gamma):
        margin = np.array(ABOVE)
        h = 1e-5
        fd = (_core_loss(margin + h, spec) - _core_loss(margin - h, spec)) / (2 * h)
        want = _reference_grad(margin, spec)
        np.testing.assert_allclose(fd, want, rtol=1e-6, atol=1e-300)
        # p -> 1 beyond the threshold and p = 1 exactly: the loss is flat 0, and the reference's
        # gradient there is within the documented drop ~x^(1+gamma).
        far = np.array(BELOW)
        step = 1.0
        fd_far = (_core_loss(far + step, spec) - _core_loss(far - step, spec)) / (2 * step)
        assert np.all(fd_far == 0.0)
        x = -np.expm1(-np.logaddexp(0.0, -far))
        assert np.all(np.abs(_reference_grad(far, spec)) <= _dropped_bound(x, spec) * (1.0 + spec.gamma) + 1e-300)


def test_reference_sigmoid_gradient_keeps_its_relative_accuracy_for_confident_examples() -> None:
    """``p - t`` for t = 1 is ``-(1 - p)``: computed as ``p - 1`` it rounded to 0 beyond a margin of ~37."""
    z = np.array([40.0, 100.0, -40.0, -100.0])
    t = np.array([1.0, 1.0, 0.0, 0.0])
    want = np.where(t == 1.0, -np.exp(-z), np.exp(z)) / (1.0 + np.exp(-np.abs(z)))  # sigmoid(z) - t
    got = reference.sigmoid_poly_loss_grad(z, t, PolySpec.cross_entropy())
    np.testing.assert_allclose(got, want, rtol=1e-14)
