"""JAX transformations on polyloss_jax: jit, vmap, grad, jacfwd, hessian, dtypes, extreme logits."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyloss_core import PolySpec, reference
from polyloss_jax import poly1_cross_entropy_with_integer_labels, poly_loss


@dataclass(frozen=True)
class Case:
    name: str
    spec: PolySpec
    family: str
    labels: str  # "int" | "prob" | "soft" (sigmoid targets)
    shape: tuple[int, ...] = (3, 5)
    axis: int | tuple[int, ...] = -1
    masked: bool = False

    def inputs(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rng = np.random.default_rng(seed)
        logits = rng.normal(scale=2.0, size=self.shape)
        axes = tuple(a % len(self.shape) for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,)))
        batch = tuple(s for d, s in enumerate(self.shape) if d not in axes)
        classes = int(np.prod([self.shape[a] for a in axes]))
        if self.labels == "int":
            labels = rng.integers(0, classes, size=batch).astype(np.int32)
        elif self.labels == "prob":
            raw = rng.uniform(0.1, 1.0, size=self.shape)
            labels = raw / raw.sum(axis=axes, keepdims=True)
        else:
            labels = rng.uniform(size=self.shape)
        where = (rng.random(self.shape) < 0.7) if self.masked else None
        return logits, labels, where


CASES = [
    Case("poly1-int", PolySpec.poly1(1.0), "softmax", "int"),
    Case(
        "focal-half-classweight-smooth-int",
        PolySpec(epsilons=(0.5,), gamma=0.5, alpha=(0.5, 1.0, 2.0, 0.25, 1.5), label_smoothing=0.1),
        "softmax",
        "int",
    ),
    Case("poly3-prob-masked", PolySpec.poly_n(2.0, -0.2, 0.1), "softmax", "prob", masked=True),
    Case("drop2-int-tuple-axis", PolySpec.drop(2), "softmax", "int", shape=(2, 3, 2), axis=(2, 0)),
    Case(
        "sigmoid-poly1-focal-1.5",
        PolySpec(epsilons=(1.0,), gamma=1.5, alpha=0.25, label_smoothing=0.05),
        "sigmoid",
        "soft",
    ),
]


def _objective(case: Case, labels, where, weights):
    """A scalar: the per-example loss dotted with fixed random weights (no symmetric cancellation)."""

    def per_example(z):
        return poly_loss(z, labels, case.spec, family=case.family, axis=case.axis, where=where)

    def total(z):
        return jnp.sum(per_example(z) * weights)

    return per_example, total


def _central_differences(values_and_grads, z: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of a function and of its gradient, one vmapped call per side."""
    basis = np.eye(z.size).reshape((z.size, *z.shape)) * step
    plus = values_and_grads(jnp.asarray(z + basis))
    minus = values_and_grads(jnp.asarray(z - basis))
    value_diff = (np.asarray(plus[0]) - np.asarray(minus[0])) / (2 * step)
    grad_diff = (np.asarray(plus[1]) - np.asarray(minus[1])) / (2 * step)  # (z.size, *z.shape)
    return value_diff.reshape(z.shape), np.moveaxis(grad_diff, 0, -1).reshape(z.shape + z.shape)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_grad_jacfwd_and_hessian_match_finite_differences(case: Case, x64) -> None:
    logits, labels, where = case.inputs()
    mask = None if where is None else jnp.asarray(where)
    example_shape = np.asarray(
        poly_loss(jnp.asarray(logits), labels, case.spec, family=case.family, axis=case.axis)
    ).shape
    weights = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, size=example_shape))
    per_example, total = _objective(case, jnp.asarray(labels), mask, weights)

    @jax.jit
    def derivatives(z):
        return jax.grad(total)(z), jax.jacfwd(per_example)(z), jax.jacrev(per_example)(z), jax.hessian(total)(z)

    grad, jac_fwd, jac_rev, hessian = (np.asarray(a) for a in derivatives(jnp.asarray(logits)))
    # The gradient from one finite-difference step size, the Hessian from a larger one
    # (differences of the gradient lose fewer digits).
    batched = jax.jit(jax.vmap(jax.value_and_grad(total)))
    fd_grad, _ = _central_differences(batched, logits, 1e-6)
    _, fd_hessian = _central_differences(batched, logits, 1e-5)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-7, atol=1e-9)

    # Forward and reverse mode give the same Jacobian of the per-example loss.
    np.testing.assert_allclose(jac_fwd, jac_rev, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        np.tensordot(np.asarray(weights), jac_fwd, axes=weights.ndim), grad, rtol=1e-12, atol=1e-14
    )

    assert hessian.shape == logits.shape + logits.shape
    np.testing.assert_allclose(hessian, fd_hessian, rtol=1e-6, atol=1e-8)
    flat = hessian.reshape(logits.size, logits.size)
    np.testing.assert_allclose(flat, flat.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if not c.masked and c.axis == -1], ids=lambda c: c.name)
def test_gradient_matches_reference(case: Case, x64) -> None:
    logits, labels, _ = case.inputs(seed=2)
    _, total = _objective(case, jnp.asarray(labels), None, 1.0)
    grad = np.asarray(jax.jit(jax.grad(total))(jnp.asarray(logits)))
    if case.family == "softmax":
        want = reference.softmax_poly_loss_grad(logits, labels, case.spec)
    else:
        want = reference.sigmoid_poly_loss_grad(logits, labels, case.spec)
    np.testing.assert_allclose(grad, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_jit_and_vmap_match_eager(case: Case) -> None:
    logits, labels, where = case.inputs(seed=3)
    z, y = jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
    mask = None if where is None else jnp.asarray(where)
    call = functools.partial(poly_loss, spec=case.spec, family=case.family, axis=case.axis, where=mask)
    eager = np.asarray(call(z, y))
    np.testing.assert_allclose(np.asarray(jax.jit(call)(z, y)), eager, rtol=1e-6, atol=1e-7)

    # vmap over a new leading axis: two stacked batches give the two batch results.
    z2, y2 = jnp.stack([z, 2.0 * z]), jnp.stack([y, y])

    def one(zb, yb):
        return poly_loss(zb, yb, case.spec, family=case.family, axis=case.axis, where=mask)

    stacked = np.asarray(jax.jit(jax.vmap(one))(z2, y2))
    np.testing.assert_allclose(stacked[0], eager, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stacked[1], np.asarray(call(2.0 * z, y)), rtol=1e-6, atol=1e-7)


def test_vmap_over_single_examples_equals_the_batch() -> None:
    rng = np.random.default_rng(4)
    z = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, size=6))
    single = jax.jit(jax.vmap(lambda zi, yi: poly1_cross_entropy_with_integer_labels(zi, yi, epsilon=2.0)))
    assert single(z, y).shape == (6,)
    np.testing.assert_allclose(single(z, y), poly1_cross_entropy_with_integer_labels(z, y, epsilon=2.0), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_is_computed_in_float32(dtype) -> None:
    """16-bit logits: the loss equals the float32 computation on the same values and comes back in float32."""
    rng = np.random.default_rng(5)
    z = jnp.asarray(rng.normal(scale=4.0, size=(6, 5)), dtype)
    y = jnp.asarray(rng.integers(0, 5, size=6))
    q = jax.nn.one_hot(y, 5, dtype=dtype)
    spec = PolySpec.poly1_focal(1.0, 0.5)

    @jax.jit
    def both(z, q):
        return (
            poly_loss(z, y, spec),
            poly_loss(z, q, spec),
            poly_loss(z, q, spec, family="sigmoid"),
            jax.grad(lambda z: poly_loss(z, y, spec).sum())(z),
        )

    @jax.jit
    def in_float32(z, q):
        z, q = z.astype(jnp.float32), q.astype(jnp.float32)
        return poly_loss(z, y, spec), poly_loss(z, q, spec), poly_loss(z, q, spec, family="sigmoid")

    *losses, grad = both(z, q)
    for got, want in zip(losses, in_float32(z, q), strict=True):
        assert got.dtype == jnp.float32
        np.testing.assert_array_equal(got, want)
    assert grad.dtype == dtype
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_float32_stays_float32_in_64_bit_mode(x64) -> None:
    """Python constants, class weights and iotas must not promote float32 work to float64."""
    z = jnp.asarray(np.random.default_rng(6).normal(size=(6, 5)), jnp.float32)
    y = jnp.asarray(np.arange(6) % 5)  # int64 in 64-bit mode
    spec = PolySpec(epsilons=(1.0, 0.5), gamma=0.5, alpha=(1.0, 2.0, 0.5, 1.0, 1.0), label_smoothing=0.1)

    @jax.jit
    def outputs(z):
        return (
            poly_loss(z, y, spec),
            poly_loss(z, jax.nn.one_hot(y, 5, dtype=jnp.float32), spec),
            poly_loss(z, y, PolySpec.poly1_focal(1.0, 0.5, 0.25), family="sigmoid"),
            jax.grad(lambda z: poly_loss(z, y, spec).sum())(z),
        )

    for out in outputs(z):
        assert out.dtype == jnp.float32


EXTREME_SPECS = {
    "poly1": PolySpec.poly1(1.0),
    "focal-0.5": PolySpec.poly1_focal(1.0, 0.5),
    "focal-1.5": PolySpec(epsilons=(1.0, -0.25), gamma=1.5, alpha=0.25),
}


@pytest.mark.parametrize("big", [1e4, 1e30])
@pytest.mark.parametrize("name", list(EXTREME_SPECS))
def test_extreme_logits_give_finite_values_gradients_and_hessians(name: str, big: float) -> None:
    spec = EXTREME_SPECS[name]
    z = jnp.asarray([[big, 0.0, -big], [-big, big, 0.0], [0.0, 0.0, 0.0], [-big, -big, big]], jnp.float32)
    y = jnp.asarray([0, 0, 2, 2])
    one_hot = jax.nn.one_hot(y, 3)

    @jax.jit
    def everything(z):
        out = []
        for family, labels in (("softmax", y), ("softmax", one_hot), ("sigmoid", one_hot)):

            def total(z, family=family, labels=labels):
                return poly_loss(z, labels, spec, family=family).sum()

            out += [total(z), jax.grad(total)(z), jax.hessian(total)(z)]
        return out

    results = everything(z)
    for value in results:
        assert np.all(np.isfinite(np.asarray(value))), value
    softmax_int, softmax_dense = results[0], results[3]
    np.testing.assert_allclose(softmax_int, softmax_dense, rtol=1e-6)
    if big == 1e4:  # the float64 reference is accurate here too
        exact, targets = np.asarray(z, np.float64), np.asarray(one_hot, np.float64)
        np.testing.assert_allclose(
            softmax_int, reference.softmax_poly_loss(exact, np.asarray(y), spec).sum(), rtol=2e-6
        )
        np.testing.assert_allclose(results[6], reference.sigmoid_poly_loss(exact, targets, spec).sum(), rtol=2e-6)
        np.testing.assert_allclose(results[1], reference.softmax_poly_loss_grad(exact, np.asarray(y), spec), atol=1e-6)
        np.testing.assert_allclose(results[7], reference.sigmoid_poly_loss_grad(exact, targets, spec), atol=1e-6)
