"""The NumPy reference: golden values, the paper's identities, and properties (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from polyloss_core import PolySpec, horner, poly_loss_from_log_prob, polynomial_term, reference
from tests import paper_formulas

# ----------------------------------------------------------------------------- golden values
# Logits (2, 0, -1), label 0: p_t = e^2 / (e^2 + 1 + e^-1).
P_T = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
LOGITS = np.array([[2.0, 0.0, -1.0]])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (PolySpec.cross_entropy(), -math.log(P_T)),
        (PolySpec.poly1(1.0), -math.log(P_T) + (1 - P_T)),
        (PolySpec.poly1(-1.0), -math.log(P_T) - (1 - P_T)),
        (PolySpec.focal(2.0), -((1 - P_T) ** 2) * math.log(P_T)),
        (PolySpec.poly1_focal(2.0, 2.0), -((1 - P_T) ** 2) * math.log(P_T) + 2 * (1 - P_T) ** 3),
        (PolySpec.drop(1), -math.log(P_T) - (1 - P_T)),
    ],
)
def test_softmax_golden_values(spec: PolySpec, expected: float) -> None:
    got = reference.softmax_poly_loss(LOGITS, np.array([0]), spec)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_softmax_golden_number() -> None:
    # Poly-1 (eps=1), logits (2, 0, -1), label 0: p_t = 0.843794..., -log p_t + 1 - p_t, evaluated once.
    assert reference.softmax_poly_loss(LOGITS, np.array([0]), PolySpec.poly1())[0] == pytest.approx(
        0.3260512850749462, abs=1e-14
    )


def test_sigmoid_golden_value_alpha_balanced_poly1_focal() -> None:
    # z = 0: p = 1/2 for both targets; BCE = log 2, 1 - p_t = 1/2.
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    got = reference.sigmoid_poly_loss(np.array([0.0, 0.0]), np.array([1.0, 0.0]), spec)
    core = math.log(2) * 0.25 + 0.125
    np.testing.assert_allclose(got, [0.25 * core, 0.75 * core], rtol=1e-12)


def test_extreme_logits_have_the_asymptotic_values() -> None:
    z = np.array([[1e4, 0.0, -1e4]])
    spec = PolySpec.poly1_focal(1.0, 0.5)
    assert reference.softmax_poly_loss(z, np.array([0]), spec)[0] == 0.0
    # Label 2: CE = 2e4 (+ e^-1e4), 1 - p_t = 1.
    assert reference.softmax_poly_loss(z, np.array([2]), spec)[0] == pytest.approx(2e4 + 1.0, rel=1e-15)
    grad = reference.softmax_poly_loss_grad(z, np.array([2]), spec)
    assert np.all(np.isfinite(grad))
    # p = (1, 0, 0): the gradient of sum_c q_c l(p_c) pushes logit 0 down, logit 2 up.
    assert grad[0, 0] > 0 > grad[0, 2]
    sig = reference.sigmoid_poly_loss(z, np.array([[1.0, 1.0, 0.0]]), spec)
    np.testing.assert_allclose(sig, [[0.0, math.log(2) * 0.5**0.5 + 0.5**1.5, 0.0]], rtol=1e-12)
    assert np.all(np.isfinite(reference.sigmoid_poly_loss_grad(z, np.array([[1.0, 1.0, 0.0]]), spec)))


# ----------------------------------------------------------------------------- identities
def test_poly1_is_ce_plus_epsilon_one_minus_pt_for_hard_labels() -> None:
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(32, 7)) * 4, rng.integers(0, 7, 32)
    ce = reference.softmax_poly_loss(z, y, PolySpec.cross_entropy())
    poly = reference.softmax_poly_loss(z, y, PolySpec.poly_n(0.7, -0.2, 0.05))
    x = -np.expm1(-ce)  # SPEC §4: p_t = exp(-CE) exactly
    np.testing.assert_allclose(poly, ce + 0.7 * x - 0.2 * x**2 + 0.05 * x**3, rtol=1e-12)


def test_soft_labels_match_the_papers_pt_form_and_optax_form() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(16, 5)) * 3
    q = rng.dirichlet(np.ones(5), size=16)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ce = -(q * np.log(p)).sum(-1)
    got = reference.softmax_poly_loss(z, q, PolySpec.poly1(2.0))
    # The paper: pt = sum(q * softmax); Poly-1 = CE + eps (1 - pt).
    np.testing.assert_allclose(got, ce + 2.0 * (1 - (q * p).sum(-1)), rtol=1e-12)
    # optax: CE + eps * sum(q * (1 - softmax)), equal for any (unnormalised) label vector.
    r = q * 1.7
    np.testing.assert_allclose(
        reference.softmax_poly_loss(z, r, PolySpec.poly1(2.0)),
        -(r * np.log(p)).sum(-1) + 2.0 * (r * (1 - p)).sum(-1),
        rtol=1e-12,
    )


def test_class_axis_one_equals_moving_the_axis() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(2, 4, 3, 5))
    y = rng.integers(0, 4, size=(2, 3, 5))
    spec = PolySpec(epsilons=(1.0, 0.5), gamma=1.0, alpha=(1.0, 2.0, 0.5, 1.5), label_smoothing=0.1)
    a = reference.softmax_poly_loss(z, y, spec, axis=1)
    b = reference.softmax_poly_loss(np.moveaxis(z, 1, -1), y, spec, axis=-1)
    np.testing.assert_allclose(a, b, rtol=1e-14)
    ga = reference.softmax_poly_loss_grad(z, y, spec, axis=1)
    gb = reference.softmax_poly_loss_grad(np.moveaxis(z, 1, -1), y, spec, axis=-1)
    np.testing.assert_allclose(ga, np.moveaxis(gb, -1, 1), rtol=1e-12, atol=1e-15)


def test_weight_and_alpha_multiply() -> None:
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(8, 3)), rng.integers(0, 3, 8)
    w = np.array([0.5, 2.0, 1.0])
    plain = reference.softmax_poly_loss(z, y, PolySpec.poly1())
    np.testing.assert_allclose(reference.softmax_poly_loss(z, y, PolySpec.poly1(), weight=w), w[y] * plain, rtol=1e-14)
    both = reference.softmax_poly_loss(z, y, PolySpec(epsilons=(1.0,), alpha=0.5), weight=w)
    np.testing.assert_allclose(both, 0.5 * w[y] * plain, rtol=1e-14)


def test_sigmoid_integer_labels_are_one_hot_along_axis() -> None:
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    np.testing.assert_allclose(
        reference.sigmoid_poly_loss(z, y, spec), reference.sigmoid_poly_loss(z, np.eye(4)[y], spec), rtol=1e-15
    )


def test_series_helpers() -> None:
    assert horner(3.0, []) == 0.0
    assert horner(3.0, [1.0, 2.0, 0.5]) == pytest.approx(3 + 18 + 13.5)
    assert polynomial_term(0.5, PolySpec.cross_entropy()) == 0.0
    assert polynomial_term(0.5, PolySpec.poly1_focal(2.0, 2.0)) == pytest.approx(2 * 0.5**3)
    assert poly_loss_from_log_prob(math.log(0.25), 0.75, PolySpec.focal(2.0)) == pytest.approx(
        -(0.75**2) * math.log(0.25)
    )


# ----------------------------------------------------------------------------- bad input
def test_reference_rejects_bad_labels() -> None:
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 3"):
        reference.softmax_poly_loss(z, np.array([0, 3]), PolySpec())
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got -1"):
        reference.softmax_poly_loss(z, np.array([-1, 0]), PolySpec())
    with pytest.raises(ValueError, match=r"integer labels must have shape \(2,\)"):
        reference.softmax_poly_loss(z, np.array([0, 1, 2]), PolySpec())
    with pytest.raises(ValueError, match=r"probability labels must have the logits' shape \(2, 3\)"):
        reference.softmax_poly_loss(z, np.ones((2, 4)) / 4, PolySpec())
    with pytest.raises(TypeError, match="labels must be integer class indices or floating"):
        reference.softmax_poly_loss(z, np.array(["a", "b"]), PolySpec())
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        reference.sigmoid_poly_loss(z, np.full((2, 3), 1.5), PolySpec())
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        reference.softmax_poly_loss(z, np.array([0, 1]), PolySpec(), axis=2)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        reference.softmax_poly_loss(z, np.array([0, 1]), PolySpec(), weight=np.ones(2))
    with pytest.raises(ValueError, match="logits must be finite"):
        reference.softmax_poly_loss(np.array([[np.nan, 0.0, 0.0]]), np.array([0]), PolySpec())


# ----------------------------------------------------------------------------- properties
def _spec_strategy():
    """Random specs; invalid ones are discarded (the validator is tested separately)."""

    @st.composite
    def build(draw):
        n = draw(st.integers(0, 4))
        eps = [draw(st.floats(-1.0, 3.0))] if n else []
        eps += [draw(st.floats(-0.5, 2.0)) for _ in range(max(n - 1, 0))]
        gamma = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]))
        try:
            return PolySpec(epsilons=tuple(eps), gamma=gamma)
        except ValueError:
            assume(False)

    return build()


P_VALUES = st.floats(1e-6, 1 - 1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 4.0), hnp.arrays(np.float64, (5, 4), elements=st.floats(-8, 8)), st.data())
def test_zero_epsilon_gives_ce_and_focal(gamma: float, z: np.ndarray, data) -> None:
    y = data.draw(hnp.arrays(np.int64, (5,), elements=st.integers(0, 3)))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p_t = p[np.arange(5), y]
    expected = -((1 - p_t) ** gamma) * np.log(p_t)
    got = reference.softmax_poly_loss(z, y, PolySpec(epsilons=(0.0, 0.0), gamma=gamma))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(_spec_strategy(), st.floats(0.05, 0.999))
def test_truncated_series_converges_to_closed_form(spec: PolySpec, p: float) -> None:
    x = 1.0 - p
    closed = float(poly_loss_from_log_prob(math.log(p), x, spec))
    # Tail of sum_j x^j / j after n terms is below x^(n+1) / (1 - x); pick n for 1e-12.
    n = max(len(spec.epsilons), math.ceil(math.log(1e-12 * (1 - x)) / math.log(x)) if x > 0 else 1) + 1
    j = np.arange(1, n + 1)
    series = float(np.sum(spec.coefficients(n) * x ** (j + spec.gamma)))
    assert series == pytest.approx(closed, rel=1e-9, abs=1e-11)


@settings(max_examples=80, deadline=None)
@given(_spec_strategy(), st.lists(P_VALUES, min_size=2, max_size=2, unique=True))
def test_valid_specs_are_non_negative_and_non_increasing_in_p(spec: PolySpec, ps: list[float]) -> None:
    lo, hi = sorted(ps)
    # A two-class softmax with logits (log p, log(1-p)) has p_t = p exactly for label 0.
    z = np.log(np.array([[lo, 1 - lo], [hi, 1 - hi]]))
    loss = reference.softmax_poly_loss(z, np.array([0, 0]), spec)
    assert np.all(loss >= -1e-15)
    assert loss[1] <= loss[0] + 1e-12 * max(1.0, abs(loss[0]))


@settings(max_examples=40, deadline=None)
@given(
    _spec_strategy(),
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-6, 6)),
    st.sampled_from([0.0, 0.1]),
    st.booleans(),
    st.data(),
)
def test_gradients_match_finite_differences(spec, z, smoothing, soft, data) -> None:
    spec = PolySpec(epsilons=spec.epsilons, gamma=spec.gamma, label_smoothing=smoothing, alpha=0.3)
    if soft:
        labels = data.draw(hnp.arrays(np.float64, (3, 4), elements=st.floats(0, 1)))
    else:
        labels = data.draw(hnp.arrays(np.int64, (3,), elements=st.integers(0, 3)))
    h = 1e-6
    for loss_fn, grad_fn in (
        (reference.softmax_poly_loss, reference.softmax_poly_loss_grad),
        (reference.sigmoid_poly_loss, reference.sigmoid_poly_loss_grad),
    ):
        analytic = grad_fn(z, labels, spec)
        numeric = np.zeros_like(z)
        for i in np.ndindex(z.shape):
            up, down = z.copy(), z.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = (loss_fn(up, labels, spec).sum() - loss_fn(down, labels, spec).sum()) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(_spec_strategy(), hnp.arrays(np.float64, (2, 3, 2), elements=st.floats(-5, 5)), st.data())
def test_reference_agrees_with_the_papers_formulas(spec, z, data) -> None:
    y = data.draw(hnp.arrays(np.int64, (2, 2), elements=st.integers(0, 2)))
    want = paper_formulas.softmax_loss(z, y, spec, axis=1)
    np.testing.assert_allclose(reference.softmax_poly_loss(z, y, spec, axis=1), want, rtol=1e-10, atol=1e-12)
    want_grad = paper_formulas.complex_step_grad(paper_formulas.softmax_loss, z, y, spec, axis=1)
    np.testing.assert_allclose(reference.softmax_poly_loss_grad(z, y, spec, axis=1), want_grad, rtol=1e-9, atol=1e-11)
