"""Poly-1 with probability labels: the fused path (custom_jvp) against the general per-class path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyloss_core import PolySpec
from polyloss_jax import poly1_cross_entropy, poly_loss

# 5 and 4096 classes take the one-pass (variadic reduce) row sums, 40 the vectorised ones.
CLASSES = [5, 40, 4096]


def _inputs(classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(4, classes))
    labels = rng.uniform(size=(4, classes)) * 1.7  # not normalised
    labels[1] = 0.0  # an all-zero row
    labels[2] = np.eye(classes)[classes - 1]  # one-hot
    return logits, labels


def _general(z: jax.Array, q: jax.Array, eps: jax.Array | float, axis: int = -1) -> jax.Array:
    """The same loss through the general per-class path (a zero eps_2 keeps it off the fused one)."""
    return poly_loss(z, q, PolySpec(epsilons=(1.0, 0.0)), axis=axis) + (eps - 1.0) * jnp.sum(
        q * (1.0 - jax.nn.softmax(z, axis=axis)), axis=axis
    )


@pytest.mark.parametrize("classes", CLASSES)
def test_values_and_first_derivatives_equal_the_general_path(classes: int, x64) -> None:
    z, q = (jnp.asarray(a) for a in _inputs(classes))
    eps = jnp.float64(2.5)
    fused = jax.value_and_grad(lambda z, q, e: poly1_cross_entropy(z, q, epsilon=e).sum(), argnums=(0, 1, 2))
    general = jax.value_and_grad(lambda z, q, e: _general(z, q, e).sum(), argnums=(0, 1, 2))
    (value, grads), (want, want_grads) = fused(z, q, eps), general(z, q, eps)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    for got, expected in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("classes", CLASSES[:2])
def test_hessian_and_forward_mode_work_on_the_fused_path(classes: int, x64) -> None:
    z, q = (jnp.asarray(a) for a in _inputs(classes))
    fused = jax.hessian(lambda z: poly1_cross_entropy(z, q, epsilon=2.0).sum())(z)
    want = jax.hessian(lambda z: _general(z, q, 2.0).sum())(z)
    np.testing.assert_allclose(fused, want, rtol=1e-9, atol=1e-12)
    third = jax.jacfwd(jax.hessian(lambda z: poly1_cross_entropy(z, q[:1]).sum()))(z[:1])
    assert np.isfinite(np.asarray(third)).all()


@pytest.mark.parametrize("axis", [0, (0, 2)])
def test_the_class_axis_argument_works_on_the_fused_path(axis: int | tuple[int, ...], x64) -> None:
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(6, 3, 2)))
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(6, 3, 2))), axis=axis)
    fused = jax.value_and_grad(lambda z: poly1_cross_entropy(z, q, epsilon=1.5, axis=axis).sum())(z)
    want = jax.value_and_grad(lambda z: _general(z, q, 1.5, axis=axis).sum())(z)
    np.testing.assert_allclose(fused[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(fused[1], want[1], rtol=1e-10, atol=1e-13)


def test_fused_path_stays_finite_at_extreme_logits() -> None:
    z = jnp.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], jnp.float32)
    q = jnp.asarray([[0.7, 0.3, 0.0], [0.2, 0.3, 0.5]], jnp.float32)
    value, grad = jax.value_and_grad(lambda z: poly1_cross_entropy(z, q).sum())(z)
    assert np.isfinite(value)
    assert np.isfinite(np.asarray(grad)).all()
    # Row 1: CE = 0.3 * 2e4, sum q (1 - p) = 0.3; row 2: uniform p, CE = log 3, sum q (1 - p) = 2/3.
    np.testing.assert_allclose(value, 0.3 * 2e4 + 0.3 + np.log(3.0) + 2.0 / 3.0, rtol=1e-6)
