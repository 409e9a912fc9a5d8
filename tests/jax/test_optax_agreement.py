"""polyloss_jax against optax's own losses: same numbers for every epsilon, axis and mask."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from polyloss_jax import (
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
)

# The comparisons run in float64 (64-bit mode) so that only real differences show.
EPSILONS = (-1.0, 0.5, 2.0, 7.5)
# (shape, axis): the class axis last, in the middle, and a tuple of axes (not in order).
LAYOUTS = {
    "last": ((6, 5), -1),
    "middle": ((2, 5, 3), 1),
    "tuple": ((3, 2, 4), (2, 0)),
}
RTOL, ATOL = 1e-12, 1e-13


def _axes(shape: tuple[int, ...], axis) -> tuple[int, ...]:
    return tuple(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,)))


def _inputs(shape, axis, where_kind: str, seed: int = 0):
    """Logits, soft labels, flat integer labels (optax's tuple-axis convention) and a mask.

    The class mask keeps every label's own class (a masked label class is not a
    meaningful target) and masks one example completely.
    """
    rng = np.random.default_rng(seed)
    axes = _axes(shape, axis)
    logits = rng.normal(scale=3.0, size=shape)
    raw = rng.uniform(0.05, 1.0, size=shape)
    soft = raw / raw.sum(axis=axes, keepdims=True)
    batch = tuple(s for d, s in enumerate(shape) if d not in axes)
    classes = int(np.prod([shape[a] for a in axes]))
    flat_labels = rng.integers(0, classes, size=batch)
    if where_kind == "none":
        where = None
    elif where_kind == "classes":
        where = (rng.random(shape) < 0.6) | (_dense_one_hot(flat_labels, shape, axis) > 0)
        index = [0] * len(shape)
        for a in axes:
            index[a] = slice(None)
        where[tuple(index)] = False
    else:  # "examples": the per-example shape
        where = rng.random(batch) < 0.6
        where.flat[0] = False
    return logits, soft, flat_labels, where


def _dense_one_hot(flat_labels: np.ndarray, shape, axis) -> np.ndarray:
    """One-hot targets of the logits' shape for flat class indices over ``axis``."""
    axes = _axes(shape, axis)
    batch_axes = tuple(d for d in range(len(shape)) if d not in axes)
    block = tuple(shape[a] for a in axes)
    one_hot = np.eye(int(np.prod(block)))[flat_labels].reshape(flat_labels.shape + block)
    # one_hot is laid out as batch axes then class axes in the given order; move them home.
    return np.moveaxis(one_hot, tuple(range(one_hot.ndim)), batch_axes + axes)


# Each comparison runs inside one jit per layout (all epsilons at once) to keep compile time low.
@functools.partial(jax.jit, static_argnames="axis")
def _poly1_vs_optax(z, q, mask, *, axis):
    ours = [poly1_cross_entropy(z, q, epsilon=e, axis=axis, where=mask) for e in EPSILONS]
    theirs = [optax.losses.poly_loss_cross_entropy(z, q, epsilon=e, axis=axis, where=mask) for e in EPSILONS]
    return jnp.stack(ours), jnp.stack(theirs)


@functools.partial(jax.jit, static_argnames="axis")
def _sparse_vs_dense(z, labels, one_hot, mask, *, axis):
    sparse = [poly1_cross_entropy_with_integer_labels(z, labels, epsilon=e, axis=axis, where=mask) for e in EPSILONS]
    dense = [poly1_cross_entropy(z, one_hot, epsilon=e, axis=axis, where=mask) for e in EPSILONS]
    return jnp.stack(sparse), jnp.stack(dense)


@pytest.mark.parametrize("where_kind", ["none", "classes"])
def test_poly1_cross_entropy_equals_optax_poly_loss(where_kind: str, x64) -> None:
    for layout, (shape, axis) in LAYOUTS.items():
        logits, soft, flat_labels, where = _inputs(shape, axis, where_kind)
        z = jnp.asarray(logits)
        mask = None if where is None else jnp.asarray(where)
        for kind, labels in (("soft", soft), ("one-hot", _dense_one_hot(flat_labels, shape, axis))):
            ours, theirs = _poly1_vs_optax(z, jnp.asarray(labels), mask, axis=axis)
            assert ours.dtype == theirs.dtype
            np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=f"{layout} {kind} {EPSILONS}")


@functools.partial(jax.jit, static_argnames="axis")
def _epsilon_zero_vs_optax(z, labels, q, mask, *, axis):
    pairs = [
        (
            poly1_cross_entropy_with_integer_labels(z, labels, epsilon=0.0, axis=axis, where=mask),
            optax.losses.softmax_cross_entropy_with_integer_labels(z, labels, axis=axis, where=mask),
        )
    ]
    if q is not None:
        pairs.append(
            (
                poly1_cross_entropy(z, q, epsilon=0.0, axis=axis, where=mask),
                optax.losses.softmax_cross_entropy(z, q, axis=axis, where=mask),
            )
        )
    return pairs


@pytest.mark.parametrize("where_kind", ["none", "classes", "examples"])
def test_epsilon_zero_equals_optax_cross_entropy(where_kind: str, x64) -> None:
    """epsilon=0 is optax's cross-entropy, for integer and probability labels."""
    for layout, (shape, axis) in LAYOUTS.items():
        logits, soft, flat_labels, where = _inputs(shape, axis, where_kind, seed=1)
        mask = None if where is None else jnp.asarray(where)
        # optax's softmax_cross_entropy only expands a per-example mask along an int axis.
        q = None if isinstance(axis, tuple) and where_kind == "examples" else jnp.asarray(soft)
        z = jnp.asarray(logits)
        for got, want in _epsilon_zero_vs_optax(z, jnp.asarray(flat_labels), q, mask, axis=axis):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=layout)


def test_epsilon_zero_equals_optax_eagerly() -> None:
    """Outside jit and in float32 as well (the eager path also inspects the label values)."""
    logits, soft, labels, _ = _inputs((6, 5), -1, "none", seed=6)
    z, q, y = jnp.asarray(logits, jnp.float32), jnp.asarray(soft, jnp.float32), jnp.asarray(labels)
    np.testing.assert_array_equal(
        poly1_cross_entropy_with_integer_labels(z, y, epsilon=0.0),
        optax.losses.softmax_cross_entropy_with_integer_labels(z, y),
    )
    np.testing.assert_allclose(
        poly1_cross_entropy(z, q, epsilon=0.0), optax.losses.softmax_cross_entropy(z, q), rtol=2e-6, atol=2e-6
    )
    np.testing.assert_allclose(
        poly1_cross_entropy(z, q, epsilon=2.0),
        optax.losses.poly_loss_cross_entropy(z, q, epsilon=2.0),
        rtol=2e-6,
        atol=2e-6,
    )
    binary = (q > 0.2).astype(jnp.float32)
    np.testing.assert_allclose(
        poly1_sigmoid_focal_loss(z, binary, epsilon=0.0, alpha=0.25),
        optax.losses.sigmoid_focal_loss(z, binary, alpha=0.25),
        rtol=2e-6,
        atol=2e-7,
    )


@pytest.mark.parametrize("where_kind", ["none", "classes", "examples"])
def test_integer_labels_equal_one_hot_probabilities(where_kind: str, x64) -> None:
    """The gather path and the dense path agree for every epsilon (tuple axes use flat indices)."""
    for layout, (shape, axis) in LAYOUTS.items():
        logits, _, flat_labels, where = _inputs(shape, axis, where_kind, seed=2)
        mask = None if where is None else jnp.asarray(where)
        one_hot = jnp.asarray(_dense_one_hot(flat_labels, shape, axis))
        sparse, dense = _sparse_vs_dense(jnp.asarray(logits), jnp.asarray(flat_labels), one_hot, mask, axis=axis)
        np.testing.assert_allclose(sparse, dense, rtol=1e-12, atol=1e-13, err_msg=layout)


def test_fully_masked_examples_give_zero_with_finite_gradients() -> None:
    logits, soft, labels, where = _inputs((6, 5), -1, "classes", seed=3)
    z, mask = jnp.asarray(logits, jnp.float32), jnp.asarray(where)
    for fn, y in (
        (poly1_cross_entropy, jnp.asarray(soft, jnp.float32)),
        (poly1_cross_entropy_with_integer_labels, jnp.asarray(labels)),
    ):
        loss, grad = jax.jit(jax.value_and_grad(lambda z, fn=fn, y=y: fn(z, y, where=mask)[0]))(z)
        assert float(loss) == 0.0
        grad = np.asarray(jax.jit(jax.grad(lambda z, fn=fn, y=y: fn(z, y, where=mask).sum()))(z))
        assert np.all(np.isfinite(grad))
        assert np.all(grad[0] == 0.0)
        assert np.all(grad[~where] == 0.0)  # masked classes get no gradient
        assert np.any(grad[1:] != 0.0)


GAMMAS = (0.0, 0.5, 2.0, 3.5)
ALPHAS = (None, 0.25)


@jax.jit
def _sigmoid_vs_optax(z, labels):
    ours, theirs = [], []
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            ours.append(poly1_sigmoid_focal_loss(z, labels, epsilon=0.0, alpha=alpha, gamma=gamma))
            theirs.append(optax.losses.sigmoid_focal_loss(z, labels, alpha=alpha, gamma=gamma))
    return jnp.stack(ours), jnp.stack(theirs)


@pytest.mark.parametrize("kind", ["binary", "soft", "integer"])
def test_epsilon_zero_equals_optax_sigmoid_focal_loss(kind: str, x64) -> None:
    """Every (gamma, alpha) pair of GAMMAS x ALPHAS, binary / soft / integer 0-1 labels."""
    rng = np.random.default_rng(4)
    logits = jnp.asarray(rng.normal(scale=3.0, size=(6, 5)))
    binary = rng.integers(0, 2, size=(6, 5))
    labels = {
        "binary": jnp.asarray(binary, jnp.float64),
        "soft": jnp.asarray(rng.uniform(size=(6, 5))),
        "integer": jnp.asarray(binary),
    }[kind]
    ours, theirs = _sigmoid_vs_optax(logits, labels)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def test_poly1_sigmoid_focal_loss_adds_the_alpha_weighted_poly_term(x64) -> None:
    rng = np.random.default_rng(5)
    logits = jnp.asarray(rng.normal(scale=3.0, size=(6, 5)))
    labels = jnp.asarray(rng.integers(0, 2, size=(6, 5)), jnp.float64)
    p = jax.nn.sigmoid(logits)
    one_minus_pt = labels * (1 - p) + (1 - labels) * p
    alpha_t = 0.25 * labels + 0.75 * (1 - labels)
    focal = optax.losses.sigmoid_focal_loss(logits, labels, alpha=0.25, gamma=1.5)
    got = poly1_sigmoid_focal_loss(logits, labels, epsilon=-0.5, alpha=0.25, gamma=1.5)
    np.testing.assert_allclose(got, focal + alpha_t * -0.5 * one_minus_pt**2.5, rtol=1e-12, atol=1e-14)


def test_default_epsilon_is_one_unlike_optax() -> None:
    for fn in (poly1_cross_entropy, poly1_cross_entropy_with_integer_labels, poly1_sigmoid_focal_loss):
        assert inspect.signature(fn).parameters["epsilon"].default == 1.0
    assert inspect.signature(optax.losses.poly_loss_cross_entropy).parameters["epsilon"].default == 2.0
    logits, labels, _, _ = _inputs((6, 5), -1, "none", seed=7)
    logits, labels = jnp.asarray(logits, jnp.float32), jnp.asarray(labels, jnp.float32)
    np.testing.assert_allclose(
        poly1_cross_entropy(logits, labels),
        optax.losses.poly_loss_cross_entropy(logits, labels, epsilon=1.0),
        rtol=2e-6,
        atol=2e-6,
    )


def test_options_are_keyword_only() -> None:
    for fn in (poly1_cross_entropy, poly1_cross_entropy_with_integer_labels, poly1_sigmoid_focal_loss):
        params = inspect.signature(fn).parameters
        positional = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        assert positional == ["logits", "labels"]
    with pytest.raises(TypeError):
        poly1_cross_entropy(jnp.zeros((6, 5)), jnp.ones((6, 5)) / 5, 2.0)  # type: ignore[misc]
