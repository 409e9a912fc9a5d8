"""What the options mean: tuple axes, broadcast labels, masks in the sigmoid family, class indices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from polyloss_core import PolySpec, reference
from polyloss_jax import poly_loss

RNG = np.random.default_rng(11)
# (batch=2, classes=3x4 on axes (2, 1), trailing=2): the classes are a 3x4 block, flattened row-major
# in the order the axes are given (axis 2 first).
LOGITS = RNG.normal(scale=2.0, size=(2, 4, 3, 2))
AXES = (2, 1)
FLAT = RNG.integers(0, 12, size=(2, 2))


def _flatten_classes(array: np.ndarray) -> np.ndarray:
    """Move the class axes (in the given order) to the end and flatten them: (2, 2, 12)."""
    return np.transpose(array, (0, 3, *AXES)).reshape(2, 2, 12)


def test_tuple_axis_is_a_flattened_class_block(x64) -> None:
    spec = PolySpec(epsilons=(1.0, -0.25), gamma=1.5, alpha=tuple(np.linspace(0.5, 2.0, 12)), label_smoothing=0.1)
    flat_logits = _flatten_classes(LOGITS)
    raw = RNG.uniform(0.1, 1.0, size=LOGITS.shape)
    probs = raw / raw.sum(axis=AXES, keepdims=True)

    @jax.jit
    def both(z, y, q):
        return poly_loss(z, y, spec, axis=AXES), poly_loss(z, q, spec, axis=AXES)

    sparse, dense = both(jnp.asarray(LOGITS), jnp.asarray(FLAT), jnp.asarray(probs))
    np.testing.assert_allclose(sparse, reference.softmax_poly_loss(flat_logits, FLAT, spec), rtol=1e-11)
    np.testing.assert_allclose(
        dense, reference.softmax_poly_loss(flat_logits, _flatten_classes(probs), spec), rtol=1e-11
    )


def test_sigmoid_class_indices_are_one_hot_along_the_axes(x64) -> None:
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    one_hot = np.zeros((2, 2, 12))
    np.put_along_axis(one_hot, FLAT[..., None], 1.0, axis=-1)
    # Back to the logits' layout: (2, 2, 12) -> (2, 2, 3, 4) -> (2, 4, 3, 2).
    targets = np.transpose(one_hot.reshape(2, 2, 3, 4), (0, 3, 2, 1))

    @jax.jit
    def both(z, y, t):
        return poly_loss(z, y, spec, family="sigmoid", axis=AXES), poly_loss(z, t, spec, family="sigmoid")

    by_index, by_target = both(jnp.asarray(LOGITS), jnp.asarray(FLAT), jnp.asarray(targets))
    np.testing.assert_array_equal(by_index, by_target)
    np.testing.assert_allclose(by_target, reference.sigmoid_poly_loss(LOGITS, targets, spec), rtol=1e-12)


def test_broadcast_labels_equal_explicit_labels() -> None:
    z = jnp.asarray(RNG.normal(size=(6, 5)), jnp.float32)
    row = jnp.asarray([0.1, 0.2, 0.3, 0.25, 0.15], jnp.float32)
    spec = PolySpec.poly1(2.0)

    @jax.jit
    def pairs(z):
        full = jnp.broadcast_to(row, z.shape)
        return (
            (poly_loss(z, row, spec), poly_loss(z, full, spec)),
            (poly_loss(z, row, spec, family="sigmoid"), poly_loss(z, full, spec, family="sigmoid")),
        )

    for broadcast, explicit in pairs(z):
        np.testing.assert_array_equal(broadcast, explicit)


def test_sigmoid_where_zeroes_masked_elements_and_examples() -> None:
    z = jnp.asarray(RNG.normal(size=(6, 5)), jnp.float32)
    t = jnp.asarray(RNG.integers(0, 2, size=(6, 5)), jnp.float32)
    elements = jnp.asarray(RNG.random((6, 5)) < 0.5)
    examples = jnp.asarray([True, False, True, True, False, True])
    spec = PolySpec(epsilons=(1.0,), gamma=0.5, alpha=0.25)

    @jax.jit
    def run(z):
        def total(z, where):
            return poly_loss(z, t, spec, family="sigmoid", where=where).sum()

        return (
            poly_loss(z, t, spec, family="sigmoid"),
            poly_loss(z, t, spec, family="sigmoid", where=elements),
            poly_loss(z, t, spec, family="sigmoid", where=examples),
            jax.grad(total)(z, elements),
        )

    full, by_element, by_example, grad = (np.asarray(a) for a in run(z))
    np.testing.assert_array_equal(by_element, np.where(elements, full, 0.0))
    np.testing.assert_array_equal(by_example, np.where(np.asarray(examples)[:, None], full, 0.0))
    assert np.all(grad[~np.asarray(elements)] == 0.0)
    assert np.all(grad[np.asarray(elements)] != 0.0)


def test_scalar_alpha_scales_the_softmax_loss() -> None:
    z = jnp.asarray(RNG.normal(size=(6, 5)), jnp.float32)
    y = jnp.asarray(RNG.integers(0, 5, size=6))

    @jax.jit
    def both(z):
        return poly_loss(z, y, PolySpec(epsilons=(1.0,), alpha=0.25)), poly_loss(z, y, PolySpec.poly1(1.0))

    weighted, plain = both(z)
    np.testing.assert_allclose(weighted, 0.25 * plain, rtol=1e-6)


def test_narrow_integer_labels_index_many_classes() -> None:
    """uint8 labels with 300 classes: the one-hot comparison and range check do not overflow."""
    z = jnp.asarray(RNG.normal(size=(3, 300)), jnp.float32)
    labels = np.array([0, 250, 7], np.uint8)
    wide = jnp.asarray(labels.astype(np.int32))

    @jax.jit
    def pairs(z, narrow):
        spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
        return (
            (poly_loss(z, narrow, spec, family="sigmoid"), poly_loss(z, wide, spec, family="sigmoid")),
            (poly_loss(z, narrow, PolySpec.poly1()), poly_loss(z, wide, PolySpec.poly1())),
        )

    for narrow, explicit in pairs(z, jnp.asarray(labels)):
        np.testing.assert_array_equal(narrow, explicit)
