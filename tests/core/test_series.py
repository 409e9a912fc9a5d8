"""polyloss_core.series: the decompositions every adapter uses reproduce the reference."""

from __future__ import annotations

import numpy as np
import pytest

from polyloss_core import PolySpec, reference
from polyloss_core.series import (
    NUMPY_OPS,
    alpha_parts,
    loss_from_ce,
    poly1_class_sum,
    poly1_dense_sum,
    poly1_from_row_sums,
    poly1_of_log_p,
    poly_loss_from_log_prob,
    sigmoid_alpha_t,
    sigmoid_loss,
    sigmoid_one_minus_p_t,
    sigmoid_slope,
    sigmoid_slope_applies,
    smooth_binary_targets,
    smooth_targets,
    smoothing_weights,
)

OPS = NUMPY_OPS
RNG = np.random.default_rng(20220411)
LOGITS = RNG.normal(scale=3.0, size=(7, 5))
LABELS = RNG.integers(0, 5, size=7)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _per_class_loss(log_p: np.ndarray, spec: PolySpec) -> np.ndarray:
    return np.asarray(loss_from_ce(-log_p, -np.expm1(log_p), spec, OPS))


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
@pytest.mark.parametrize(
    "unsmoothed",
    [PolySpec.poly1(2.0), PolySpec.poly1(-1.0), PolySpec.poly_n(1.0, 0.5), PolySpec.focal(1.5), PolySpec.drop(2)],
    ids=["poly1", "poly1-neg", "poly2", "focal", "drop2"],
)
def test_smoothing_weights_reproduce_the_smoothed_reference(unsmoothed: PolySpec, smoothing: float) -> None:
    """(1 - s) l(p_y) + (s / C) sum_c l(p_c) is the loss of the smoothed one-hot target."""
    spec = PolySpec(epsilons=unsmoothed.epsilons, gamma=unsmoothed.gamma, label_smoothing=smoothing)
    log_p = _log_softmax(LOGITS)
    per_class = _per_class_loss(log_p, spec)
    hard_weight, class_weight = smoothing_weights(spec, 5)
    assert (hard_weight, class_weight) == (1.0 - smoothing, smoothing / 5)
    got = hard_weight * per_class[np.arange(7), LABELS] + class_weight * per_class.sum(axis=-1)
    np.testing.assert_allclose(got, reference.softmax_poly_loss(LOGITS, LABELS, spec), rtol=1e-12)
    if len(spec.epsilons) == 1 and spec.gamma == 0:
        closed = poly1_class_sum(-log_p.sum(axis=-1), spec, 5)
        np.testing.assert_allclose(closed, per_class.sum(axis=-1), rtol=1e-12)
        # The epsilon override of the closed form equals the spec with that epsilon.
        other = PolySpec.poly1(0.5, label_smoothing=smoothing)
        np.testing.assert_allclose(
            poly1_class_sum(-log_p.sum(axis=-1), spec, 5, epsilon=0.5),
            _per_class_loss(log_p, other).sum(axis=-1),
            rtol=1e-12,
        )


@pytest.mark.parametrize("eps", [-1.0, 0.0, 0.5, 2.0])
def test_poly1_dense_sum_is_poly1_of_dense_targets(eps: float) -> None:
    """ce + (1 + eps) S - sum r (1 + eps p) is sum_c r_c l(p_c) for unnormalised rows, all-zero rows too."""
    r = RNG.uniform(size=(7, 5)) * 3.0
    r[2] = 0.0
    log_p = _log_softmax(LOGITS)
    ce, p = -(r * log_p).sum(axis=-1), np.exp(log_p)
    got = poly1_dense_sum(ce, r.sum(axis=-1), (r * (1.0 + eps * p)).sum(axis=-1), PolySpec.poly1(eps))
    np.testing.assert_allclose(got, (r * _per_class_loss(log_p, PolySpec.poly1(eps))).sum(axis=-1), rtol=1e-12)
    # The epsilon override wins over the spec's.
    override = poly1_dense_sum(ce, r.sum(axis=-1), (r * (1.0 + eps * p)).sum(axis=-1), PolySpec.poly1(9.0), epsilon=eps)
    np.testing.assert_allclose(override, got, rtol=1e-12)


@pytest.mark.parametrize("eps", [-1.0, 0.0, 0.5, 2.0])
def test_poly1_of_log_p_is_minus_the_per_class_loss(eps: float) -> None:
    """log p + eps expm1(log p) is minus loss_from_ce(-log p, -expm1(log p)), to full precision as p -> 1."""
    log_p = np.concatenate([_log_softmax(LOGITS).ravel(), [-1e-12, -0.0]])
    want = -_per_class_loss(log_p, PolySpec.poly1(eps))
    np.testing.assert_allclose(poly1_of_log_p(log_p, PolySpec.poly1(eps), OPS), want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(poly1_of_log_p(log_p, PolySpec.poly1(9.0), OPS, epsilon=eps), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("scale", [1.0, 1e3])
@pytest.mark.parametrize("eps", [-1.0, 0.5, 2.0])
def test_poly1_from_row_sums_is_poly1_of_dense_targets(eps: float, scale: float) -> None:
    """Row sums over shifted logits give sum_c q_c l(p_c), unnormalised and all-zero rows included."""
    z, q = LOGITS * scale, RNG.uniform(size=(7, 5)) * 2.0
    q[4] = 0.0
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    got = poly1_from_row_sums(
        np.log(e.sum(-1)), (q * e).sum(-1) / e.sum(-1), (q * shifted).sum(-1), q.sum(-1), PolySpec.poly1(eps), OPS
    )
    want = (q * _per_class_loss(_log_softmax(z), PolySpec.poly1(eps))).sum(axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_smooth_targets_match_the_spec() -> None:
    q = RNG.uniform(size=(3, 4))
    spec = PolySpec.poly1(label_smoothing=0.2)
    np.testing.assert_allclose(smooth_targets(q, spec, 4), 0.8 * q + 0.05)
    np.testing.assert_allclose(smooth_binary_targets(q, spec), 0.8 * q + 0.1)
    assert smooth_targets(q, PolySpec.poly1(), 4) is q
    assert smooth_binary_targets(q, PolySpec.poly1()) is q


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_sigmoid_alpha_t_is_alpha_for_positives_and_one_minus_alpha_for_negatives(alpha: float) -> None:
    t = np.array([0.0, 0.3, 1.0])
    np.testing.assert_allclose(sigmoid_alpha_t(t, alpha), alpha * t + (1 - alpha) * (1 - t), rtol=0, atol=1e-15)
    assert sigmoid_alpha_t(t, None) is None


def test_sigmoid_alpha_t_reproduces_the_sigmoid_reference() -> None:
    z, t = RNG.normal(size=(4, 3)), RNG.uniform(size=(4, 3))
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    unweighted = reference.sigmoid_poly_loss(z, t, PolySpec.poly1_focal(1.0, 2.0))
    np.testing.assert_allclose(
        sigmoid_alpha_t(t, 0.25) * unweighted, reference.sigmoid_poly_loss(z, t, spec), rtol=1e-13
    )


@pytest.mark.parametrize(
    ("alpha", "want"),
    [(None, (1.0, None)), (0.5, (0.5, None)), (2, (2.0, None)), ((1.0, 2.0, 0.5), (1.0, (1.0, 2.0, 0.5)))],
)
def test_alpha_parts(alpha, want) -> None:
    assert alpha_parts(PolySpec(alpha=alpha)) == want


def test_alpha_parts_reproduce_the_weighted_reference() -> None:
    weights = (0.5, 1.0, 2.0, 0.25, 1.5)
    for alpha in (0.3, weights):
        spec = PolySpec(epsilons=(1.0,), alpha=alpha)
        scalar, per_class = alpha_parts(spec)
        w = np.ones(5) if per_class is None else np.asarray(per_class)
        log_p = _log_softmax(LOGITS)
        per = _per_class_loss(log_p, spec)[np.arange(7), LABELS]
        np.testing.assert_allclose(
            scalar * w[LABELS] * per, reference.softmax_poly_loss(LOGITS, LABELS, spec), rtol=1e-12
        )


@pytest.mark.parametrize(
    "spec",
    [PolySpec.poly1(2.0), PolySpec.poly_n(1.0, -0.2, 0.1), PolySpec.poly1_focal(0.5, 1.5), PolySpec.drop(3)],
    ids=["poly1", "poly3", "poly1-focal", "drop3"],
)
def test_loss_from_ce_epsilon_override_equals_the_spec_with_that_epsilon(spec: PolySpec) -> None:
    ce = np.array([0.0, 1e-9, 0.3, 2.0, 40.0])
    x = -np.expm1(-ce)
    for epsilon in (-1.0, 0.0, 0.7, np.array(3.0)):
        replaced = PolySpec(epsilons=(float(epsilon), *spec.epsilons[1:]), gamma=spec.gamma, allow_increasing=True)
        np.testing.assert_allclose(
            loss_from_ce(ce, x, spec, OPS, epsilon=epsilon), loss_from_ce(ce, x, replaced, OPS), rtol=1e-14
        )


def test_loss_from_ce_equals_the_log_prob_form() -> None:
    ce = np.array([0.0, 1e-12, 0.5, 3.0, 30.0])
    x = -np.expm1(-ce)
    for spec in (PolySpec.cross_entropy(), PolySpec.poly1(1.0), PolySpec.focal(2.0), PolySpec.poly_n(1.0, 0.5)):
        np.testing.assert_allclose(loss_from_ce(ce, x, spec, OPS), poly_loss_from_log_prob(-ce, x, spec), rtol=1e-14)


@pytest.mark.parametrize(
    "spec",
    [
        PolySpec.cross_entropy(),
        PolySpec.poly1(2.0),
        PolySpec.poly1_focal(-1.0, 2.0, 0.25),
        PolySpec.focal(1.5, 0.75),
        PolySpec(epsilons=(1.0, 0.5), label_smoothing=0.2),
    ],
    ids=["ce", "poly1", "poly1-focal-alpha", "focal-fractional", "poly2-smoothed"],
)
def test_sigmoid_loss_reproduces_the_sigmoid_reference(spec: PolySpec) -> None:
    z = RNG.normal(scale=4.0, size=(6, 3))
    t = smooth_binary_targets((RNG.random((6, 3)) < 0.4).astype(np.float64), spec)
    bce = np.logaddexp(0.0, z) - t * z
    ours = sigmoid_loss(bce, t, spec, OPS, lambda: sigmoid_one_minus_p_t(z, t, OPS))
    raw = (t - 0.5 * spec.label_smoothing) / (1.0 - spec.label_smoothing)  # the reference smooths itself
    np.testing.assert_allclose(ours, reference.sigmoid_poly_loss(z, raw, spec), rtol=1e-12, atol=1e-15)


def test_sigmoid_loss_asks_for_one_minus_p_t_only_when_the_spec_needs_it() -> None:
    def unused() -> np.ndarray:
        raise AssertionError("plain binary cross-entropy needs no 1 - p_t")

    bce, t = np.array([0.3]), np.array([1.0])
    assert sigmoid_loss(bce, t, PolySpec(alpha=0.25), OPS, unused).tolist() == [0.3 * 0.25]


def test_sigmoid_one_minus_p_t_keeps_its_relative_precision_for_confident_logits() -> None:
    z, t = np.array([40.0, -40.0]), np.array([1.0, 0.0])
    np.testing.assert_allclose(sigmoid_one_minus_p_t(z, t, OPS), np.exp(-40.0) / (1.0 + np.exp(-40.0)), rtol=1e-14)


@pytest.mark.parametrize(
    "spec",
    [
        PolySpec.poly1(2.0),
        PolySpec(),
        PolySpec.poly1_focal(-1.0, 2.0, 0.25),
        PolySpec.poly1_focal(1.0, 1.0, 0.75),
        PolySpec.poly1_focal(0.5, 3.0),
        PolySpec.poly1(1.0, label_smoothing=0.2),
    ],
    ids=["poly1", "ce", "poly1-focal-alpha", "gamma-1", "gamma-3", "smoothed"],
)
def test_sigmoid_slope_is_the_reference_gradient(spec: PolySpec) -> None:
    """The closed-form gradient equals the float64 reference's, for hard and soft targets and logits to 1e4."""
    assert sigmoid_slope_applies(spec)
    z = np.concatenate([RNG.normal(scale=4.0, size=(5, 4)), [[40.0, -40.0, 1e4, -1e4]]])
    raw = (RNG.random(z.shape) < 0.4).astype(np.float64)
    raw[0] = RNG.random(4)  # one row of soft targets
    raw[-1] = [1.0, 0.0, 0.0, 1.0]
    t = smooth_binary_targets(raw, spec)
    p, q = np.exp(-np.logaddexp(0.0, -z)), np.exp(-np.logaddexp(0.0, z))
    bce = np.maximum(z, 0.0) - t * z + np.log1p(np.exp(-np.abs(z)))
    slope = sigmoid_slope(bce, t * q + (1.0 - t) * p, p, q, t, spec)
    np.testing.assert_allclose(slope, reference.sigmoid_poly_loss_grad(z, raw, spec), rtol=1e-12, atol=1e-300)
    assert not sigmoid_slope_applies(PolySpec.focal(1.5))
    assert not sigmoid_slope_applies(PolySpec(epsilons=(1.0, 2.0)))
