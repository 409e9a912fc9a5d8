"""Float target rows: the per-batch one-hot decision and both of its branches, eager and traced.

``Poly1CategoricalCrossentropy`` (and every softmax loss given per-class targets)
computes one-hot batches from the fused cross-entropy alone and any other batch
with the general formula; which one runs is decided at run time from the labels.
Each case below is a batch that must take one branch or the other, and both must
give the reference's values and gradients on every Keras backend, eagerly and
inside every compiler the backend has.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import polyloss_tf as pl
from polyloss_core import PolySpec, reference
from polyloss_tf import _impl

from .helpers import ATOL, BACKEND, RTOL, TRACERS, logits, one_hot, soft_labels, to_np, value_and_grad

C = 6
N = 8


def _rows(kind: str) -> np.ndarray:
    """Target rows; every kind but "one-hot" must take the general branch."""
    q = one_hot(np.arange(N) % C, C)
    if kind == "one-hot":
        return q
    if kind == "one-soft-row":
        q[3] = soft_labels((C,), 5)
    elif kind == "nearly-one-hot-row":
        q[5] = 0.0
        q[5, 2], q[5, 4] = 1.0 - 1e-3, 1e-3
    elif kind == "all-soft":
        q = soft_labels((N, C), 6)
    elif kind == "one-hot-and-zero-rows":
        q[[1, 4]] = 0.0
    elif kind == "not-normalized":  # rows of squares summing to 1, and a multi-hot row next to a zero row
        q[2] = 0.0
        q[2, 1], q[2, 3] = 0.6, 0.8
        q[5, :2] = 1.0
        q[6] = 0.0
    else:
        raise ValueError(kind)
    return q


KINDS = ["one-hot", "one-soft-row", "nearly-one-hot-row", "all-soft", "not-normalized", "one-hot-and-zero-rows"]
SPECS = {
    "poly1": (
        lambda: pl.Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True, reduction=None),
        PolySpec.poly1(2.0),
    ),
    "poly3": (
        lambda: pl.PolyLoss(PolySpec.poly_n(1.0, -0.5, 0.25), from_logits=True, reduction=None),
        PolySpec.poly_n(1.0, -0.5, 0.25),
    ),
    "focal-class-alpha": (
        lambda: pl.Poly1CategoricalFocalCrossentropy(
            epsilon=0.5, alpha=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], gamma=1.5, from_logits=True, reduction=None
        ),
        PolySpec(epsilons=(0.5,), gamma=1.5, alpha=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)),
    ),
}


@pytest.mark.parametrize("tracer", list(TRACERS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_values_and_gradients_match_reference(tracer: str, kind: str, spec_name: str) -> None:
    make_loss, spec = SPECS[spec_name]
    z, q = logits((N, C), 11), _rows(kind)
    value, grad = value_and_grad(make_loss(), q, z, tracer)
    np.testing.assert_allclose(value, reference.softmax_poly_loss(z, q, spec), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, reference.softmax_poly_loss_grad(z, q, spec), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tracer", list(TRACERS))
@pytest.mark.parametrize("kind", ["one-hot", "one-soft-row"])
@pytest.mark.parametrize("extreme", [False, True], ids=["moderate-logits", "logits-1e4"])
def test_many_classes_take_the_one_hot_branch_under_every_tracer(tracer: str, kind: str, extreme: bool) -> None:
    """From ``_impl.XLA_BRANCH_MIN_CLASSES`` classes on, XLA also branches on one-hot batches: both branches exact,
    also at logits of +-1e4 with ties at the maximum (the soft branch under XLA works from shifted row sums)."""
    classes = _impl.XLA_BRANCH_MIN_CLASSES
    q = one_hot(np.arange(N) * 7 % classes, classes)
    if kind == "one-soft-row":
        q[3] = soft_labels((classes,), 5)
    z = logits((N, classes), 14)
    if extreme:
        z = (np.random.default_rng(15).choice([-1.0, 1.0], size=(N, classes)) * 1e4).astype(np.float32)
        z[:, 0] = 1e4
    loss = pl.Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True, reduction=None)
    value, grad = value_and_grad(loss, q, z, tracer)
    spec = PolySpec.poly1(2.0)
    np.testing.assert_allclose(value, reference.softmax_poly_loss(z, q, spec), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, reference.softmax_poly_loss_grad(z, q, spec), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tracer", list(TRACERS))
def test_class_axis_1_with_extra_dimensions(tracer: str) -> None:
    """(N, C, d1, d2) targets: the TensorFlow path flattens to (rows, classes) and restores the shape."""
    z = logits((2, C, 3, 2), 12)
    q = one_hot(np.arange(12).reshape(2, 3, 2) % C, C, axis=1)
    loss = pl.Poly1CategoricalCrossentropy(epsilon=1.0, from_logits=True, axis=1, reduction=None)
    spec = PolySpec.poly1(1.0)
    for rows in (q, np.moveaxis(soft_labels((2, 3, 2, C), 13), -1, 1)):
        value, grad = value_and_grad(loss, rows, z, tracer)
        assert value.shape == (2, 3, 2)
        np.testing.assert_allclose(value, reference.softmax_poly_loss(z, rows, spec, axis=1), rtol=RTOL, atol=ATOL)
        want = reference.softmax_poly_loss_grad(z, rows, spec, axis=1)
        np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


def test_a_zero_row_costs_nothing_next_to_one_hot_rows() -> None:
    """An all-zero row (padding) has loss 0; the batch takes the general branch (gradient 0 there too)."""
    z, q = logits((N, C), 14), one_hot(np.arange(N) % C, C)
    q[2] = 0.0
    value = to_np(pl.Poly1CategoricalCrossentropy(epsilon=1.0, from_logits=True, reduction=None)(q, z))
    assert value[2] == 0.0
    np.testing.assert_allclose(value, reference.softmax_poly_loss(z, q, PolySpec.poly1(1.0)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("one-hot", True),
        ("one-soft-row", False),
        ("nearly-one-hot-row", False),
        ("all-soft", False),
        ("not-normalized", False),
        ("one-hot-and-zero-rows", False),
    ],
)
def test_one_hot_decision(kind: str, expected: bool) -> None:
    """Only batches of one-hot rows take the cross-entropy-only branch."""
    assert bool(to_np(_impl.all_rows_one_hot(ops.convert_to_tensor(_rows(kind))))) is expected


if BACKEND == "tensorflow":

    def test_xla_is_detected_while_tracing() -> None:
        import tensorflow as tf

        from polyloss_tf import _tensorflow

        seen = {}

        def probe(name):
            def fn(x):
                seen[name] = (_tensorflow.compiling_with_xla(), _tensorflow.graph_without_xla())
                return x

            return fn

        tf.function(probe("graph"))(tf.constant(1.0))
        tf.function(probe("xla"), jit_compile=True)(tf.constant(1.0))
        probe("eager")(tf.constant(1.0))
        # Only a plain graph compiles the elementwise parts as small XLA functions of their own.
        assert seen == {"graph": (False, True), "xla": (True, False), "eager": (False, False)}

    def test_fit_with_one_hot_targets_matches_integer_targets() -> None:
        """A model trained on one-hot rows follows the one trained on the same labels as integers."""
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 5)).astype(np.float32)
        y = rng.integers(0, 3, size=64)

        def train(loss, labels):
            keras.utils.set_random_seed(1)
            model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
            model.fit(x, labels, epochs=3, batch_size=16, verbose=0, shuffle=False)
            return [w.numpy() for w in model.weights]

        dense = train(pl.Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True), one_hot(y, 3))
        sparse = train(pl.Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True), y)
        for a, b in zip(dense, sparse, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tracer", list(TRACERS))
def test_one_hot_rows_with_extra_dimensions_and_per_class_alpha(tracer: str) -> None:
    """(N, C, d1, d2) one-hot rows with per-class alpha: the one-hot branch weighs each row in its own shape.

    On TensorFlow the branch once multiplied the flattened per-row cross-entropy
    by the (N, d1, d2) row weights and raised "Incompatible shapes".
    """
    spec = SPECS["focal-class-alpha"][1]
    loss = pl.Poly1CategoricalFocalCrossentropy(
        epsilon=0.5, alpha=list(spec.alpha), gamma=1.5, from_logits=True, axis=1, reduction=None
    )
    z = logits((2, C, 3, 2), 15)
    q = one_hot(np.arange(12).reshape(2, 3, 2) % C, C, axis=1)
    value, grad = value_and_grad(loss, q, z, tracer)
    assert value.shape == (2, 3, 2)
    np.testing.assert_allclose(value, reference.softmax_poly_loss(z, q, spec, axis=1), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, reference.softmax_poly_loss_grad(z, q, spec, axis=1), rtol=1e-4, atol=1e-6)


EMPTY_BATCH_LOSSES = {
    "poly1": lambda axis: pl.Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True, axis=axis, reduction=None),
    "poly3": lambda axis: pl.PolyLoss(PolySpec.poly_n(1.0, -0.5, 0.25), from_logits=True, axis=axis, reduction=None),
    "focal": lambda axis: pl.Poly1CategoricalFocalCrossentropy(
        epsilon=0.5, from_logits=True, axis=axis, reduction=None
    ),
    "focal-class-alpha": lambda axis: pl.Poly1CategoricalFocalCrossentropy(
        epsilon=0.5, alpha=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], gamma=1.5, from_logits=True, axis=axis, reduction=None
    ),
}


@pytest.mark.parametrize("name", list(EMPTY_BATCH_LOSSES))
@pytest.mark.parametrize(("shape", "axis"), [((0, C), -1), ((0, C, 1, 2), 1)])
def test_empty_batch_gives_an_empty_loss_like_keras(name: str, shape: tuple[int, ...], axis: int) -> None:
    """No rows: an empty loss and an empty gradient, as Keras' own categorical losses give, not an error.

    ``keras.ops.max`` raises on an empty tensor (TensorFlow eagerly, torch); the
    one-hot decision used it.
    """
    z, q = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    value, grad = value_and_grad(EMPTY_BATCH_LOSSES[name](axis), q, z, "eager")
    keras_own = keras.losses.CategoricalFocalCrossentropy(from_logits=True, axis=axis, reduction=None)
    rows = tuple(np.delete(np.array(shape), axis))
    assert value.shape == to_np(keras_own(q, z)).shape == rows
    assert grad.shape == shape
    assert bool(to_np(_impl.all_rows_one_hot(ops.convert_to_tensor(np.zeros((0, C), np.float32)))))


def test_empty_sigmoid_targets_need_no_range_mark() -> None:
    """An empty batch of sigmoid targets passes the range mark unchanged (``keras.ops.min`` raises on it)."""
    t = ops.convert_to_tensor(np.zeros((0, C), np.float32))
    assert to_np(_impl.nan_outside_unit_interval(t, t)).shape == (0, C)
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    for from_logits in (True, False):
        assert to_np(_impl.sigmoid(t, t, spec, from_logits=from_logits, checked=False)).shape == (0, C)
