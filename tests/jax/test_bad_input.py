"""Bad input (SPEC section 6): clear eager errors, NaN (never a plausible number) under jit."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyloss_core import PolySpec
from polyloss_jax import (
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
    poly_loss,
)

LOGITS = jnp.asarray(np.random.default_rng(0).normal(size=(6, 5)), jnp.float32)
LABELS = jnp.asarray([0, 1, 2, 3, 4, 0])
PROBS = jax.nn.one_hot(LABELS, 5)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: poly1_cross_entropy(LOGITS.astype(jnp.int32), PROBS), TypeError, "logits .*int32"),
        (lambda: poly1_cross_entropy(LOGITS, LABELS), TypeError, "labels .*floating.*int32"),
        (lambda: poly1_cross_entropy_with_integer_labels(LOGITS, PROBS), TypeError, "labels .*integer.*float32"),
        (lambda: poly_loss(LOGITS, PROBS > 0.5, PolySpec.poly1()), TypeError, "labels .*bool"),
        (lambda: poly_loss(LOGITS, LABELS, {"epsilons": [1.0]}), TypeError, "spec .*dict"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, where=PROBS), TypeError, "where .*bool.*float32"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, axis=1.0), TypeError, "axis .*1.0"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, epsilon="1"), TypeError, "epsilon .*'1'"),
        (lambda: poly1_sigmoid_focal_loss(LOGITS, PROBS, gamma=None), TypeError, "gamma .*None"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, epsilon=-1.5), ValueError, "epsilon .*-1.5"),
        (lambda: poly1_sigmoid_focal_loss(LOGITS, PROBS, gamma=-1.0), ValueError, "gamma .*-1.0"),
        (lambda: poly1_sigmoid_focal_loss(LOGITS, PROBS, alpha=1.5), ValueError, "alpha .*1.5"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, epsilon=float("nan")), ValueError, "epsilon .*nan"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, epsilon=jnp.ones(2)), ValueError, r"epsilon .*shape \(2,\)"),
        (lambda: poly_loss(LOGITS, LABELS, PolySpec.poly1(), family="softmx"), ValueError, "family .*softmx"),
        (lambda: poly_loss(LOGITS, LABELS, PolySpec(alpha=(1.0, 2.0))), ValueError, "alpha has 2 .* 5 classes"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, axis=2), ValueError, r"axis=2 .*\(6, 5\)"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, axis=(1, -1)), ValueError, r"axis=\(1, -1\) .*twice"),
        (lambda: poly1_cross_entropy(LOGITS[0, 0], PROBS[0, 0]), ValueError, r"logits .*shape \(\)"),
        (lambda: poly1_cross_entropy(LOGITS[:, :0], PROBS[:, :0]), ValueError, r"class .*\(6, 0\)"),
        (
            lambda: poly1_cross_entropy_with_integer_labels(LOGITS, LABELS[:4]),
            ValueError,
            r"labels .*\(6,\).*got \(4,\)",
        ),
        (lambda: poly1_cross_entropy(LOGITS, PROBS[:, :3]), ValueError, r"labels .*\(6, 5\).*got \(6, 3\)"),
        (lambda: poly1_cross_entropy(LOGITS, PROBS, where=PROBS[:3] > 0), ValueError, r"where .*got \(3, 5\)"),
        (lambda: poly1_sigmoid_focal_loss(LOGITS, PROBS[:, :2]), ValueError, r"labels .*\(6, 5\).*got \(6, 2\)"),
        (
            lambda: poly_loss(LOGITS, LABELS[:4], PolySpec.poly1(), family="sigmoid"),
            ValueError,
            r"labels .*\(6,\).*got \(4,\)",
        ),
    ],
    ids=[
        "int-logits",
        "int-labels-for-probabilities",
        "float-labels-for-indices",
        "bool-softmax-labels",
        "spec-not-polyspec",
        "float-where",
        "float-axis",
        "string-epsilon",
        "none-gamma",
        "epsilon-below-minus-one",
        "negative-gamma",
        "sigmoid-alpha-above-one",
        "nan-epsilon",
        "vector-epsilon",
        "unknown-family",
        "alpha-length",
        "axis-out-of-range",
        "axis-repeated",
        "scalar-logits",
        "no-classes",
        "integer-label-shape",
        "probability-label-shape",
        "where-shape",
        "sigmoid-target-shape",
        "sigmoid-index-shape",
    ],
)
def test_eager_errors_name_the_argument(call, error, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("bad", [-1, 5, 1000])
def test_out_of_range_labels_raise_eagerly(bad: int) -> None:
    labels = LABELS.at[2].set(bad)
    for call in (
        lambda: poly1_cross_entropy_with_integer_labels(LOGITS, labels),
        lambda: poly_loss(LOGITS, labels, PolySpec.poly1(label_smoothing=0.1)),
        lambda: poly_loss(LOGITS, labels, PolySpec.poly1_focal(), family="sigmoid"),
        # Under grad (not jit) the labels are still concrete, so the check still runs.
        lambda: jax.grad(lambda z: poly1_cross_entropy_with_integer_labels(z, labels).sum())(LOGITS),
    ):
        with pytest.raises(ValueError, match=rf"labels contains class index {bad}, outside the valid range \[0, 5\)"):
            call()


@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_sigmoid_targets_outside_unit_interval_raise_eagerly(bad: float) -> None:
    with pytest.raises(
        ValueError, match=rf"labels values must lie in \[0, 1\], got values in \[[^]]*{re.escape(str(bad))}[^]]*\]$"
    ):
        poly1_sigmoid_focal_loss(LOGITS, PROBS.at[1, 1].set(bad))


def test_traced_gamma_and_alpha_are_rejected() -> None:
    """Only epsilon may be traced; gamma and alpha configure the compiled function."""
    with pytest.raises(TypeError, match=r"gamma must be a real number, got .*Trace"):
        jax.jit(lambda z, g: poly1_sigmoid_focal_loss(z, PROBS, gamma=g))(LOGITS, 2.0)
    with pytest.raises(TypeError, match=r"alpha must be a real number, got .*Trace"):
        jax.jit(lambda z, a: poly1_sigmoid_focal_loss(z, PROBS, alpha=a))(LOGITS, 0.25)
    # A concrete 0-d array is a number and is accepted.
    np.testing.assert_allclose(
        poly1_cross_entropy(LOGITS, PROBS, epsilon=np.float32(2.0)), poly1_cross_entropy(LOGITS, PROBS, epsilon=2.0)
    )


def _bad_labels(bad: int) -> jax.Array:
    return LABELS.at[2].set(bad)


@pytest.mark.parametrize("bad", [-1, 5])
def test_out_of_range_labels_give_nan_under_jit(bad: int) -> None:
    """Inside jit the values cannot be checked: the bad example is NaN, the others are untouched."""
    good = np.asarray(poly1_cross_entropy_with_integer_labels(LOGITS, LABELS))
    smooth = PolySpec(epsilons=(1.0,), gamma=0.5, alpha=(1.0, 2.0, 0.5, 1.0, 1.0), label_smoothing=0.1)
    good_smooth = np.asarray(poly_loss(LOGITS, LABELS, smooth))

    @jax.jit
    def losses(z, y):
        return (
            poly1_cross_entropy_with_integer_labels(z, y),
            poly_loss(z, y, smooth),
            jax.grad(lambda z: poly1_cross_entropy_with_integer_labels(z, y).sum())(z),
        )

    plain, smoothed, grad = (np.asarray(a) for a in losses(LOGITS, _bad_labels(bad)))
    for got, want in ((plain, good), (smoothed, good_smooth)):
        assert np.isnan(got[2])
        keep = np.arange(6) != 2
        np.testing.assert_allclose(got[keep], want[keep], rtol=1e-6)
    # The bad example contributes no gradient; the others are finite.
    assert np.all(grad[2] == 0.0)
    assert np.all(np.isfinite(grad))


def test_out_of_range_labels_give_nan_under_vmap_and_in_the_sigmoid_family() -> None:
    bad = _bad_labels(7)
    per_example = jax.vmap(lambda z, y: poly1_cross_entropy_with_integer_labels(z, y))(LOGITS, bad)
    assert np.isnan(np.asarray(per_example)[2])
    assert np.all(np.isfinite(np.asarray(per_example)[[0, 1, 3, 4, 5]]))

    @jax.jit
    def sigmoid(z, y, t):
        return poly_loss(z, y, PolySpec.poly1_focal(), family="sigmoid"), poly1_sigmoid_focal_loss(z, t)

    by_index, by_target = (np.asarray(a) for a in sigmoid(LOGITS, bad, PROBS.at[1, 3].set(1.5)))
    assert np.all(np.isnan(by_index[2]))
    assert np.all(np.isfinite(np.delete(by_index, 2, axis=0)))
    assert np.isnan(by_target[1, 3])
    assert np.isfinite(by_target).sum() == by_target.size - 1


def test_labels_are_checked_before_jax_narrows_them() -> None:
    """A NumPy int64 label beyond int32 would wrap to a valid class on conversion; it is caught first."""
    labels = np.array([0, 2**32 + 3, 1, 2, 3, 4])
    with pytest.raises(ValueError, match=f"class index {2**32 + 3},"):
        poly1_cross_entropy_with_integer_labels(LOGITS, labels)
