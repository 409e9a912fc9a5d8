"""The Keras classes against Keras' own losses (epsilon=0) and against the float64 reference (epsilon != 0).

Everything here runs on the active Keras backend (TensorFlow, JAX or PyTorch).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import polyloss_tf as pl
from polyloss_core import PolySpec, reference

from .helpers import (
    ATOL,
    RTOL,
    gradient,
    logits,
    one_hot,
    prob_logits,
    sigmoid,
    soft_labels,
    softmax,
    to_np,
)

REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]
N, C = 6, 5


def _inputs(from_logits: bool, seed: int, shape=(N, C), axis: int = -1):
    z = logits(shape, seed)
    return z if from_logits else softmax(z, axis)


def _close(ours, theirs) -> None:
    np.testing.assert_allclose(to_np(ours), to_np(theirs), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- epsilon = 0 is Keras
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("labels", ["one-hot", "soft"])
def test_categorical_equals_keras(from_logits: bool, label_smoothing: float, labels: str) -> None:
    y_pred = _inputs(from_logits, 1)
    y_true = one_hot(np.arange(N) % C, C) if labels == "one-hot" else soft_labels((N, C), 2)
    kw = {"from_logits": from_logits, "label_smoothing": label_smoothing, "reduction": None}
    ours = pl.Poly1CategoricalCrossentropy(epsilon=0.0, **kw)(y_true, y_pred)
    _close(ours, keras.losses.CategoricalCrossentropy(**kw)(y_true, y_pred))


def test_categorical_axis_equals_keras() -> None:
    z = logits((3, C, 4), 3)
    y_true = one_hot(np.arange(12).reshape(3, 4) % C, C, axis=1)
    kw = {"from_logits": True, "axis": 1, "reduction": None}
    _close(
        pl.Poly1CategoricalCrossentropy(epsilon=0.0, **kw)(y_true, z),
        keras.losses.CategoricalCrossentropy(**kw)(y_true, z),
    )


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_shape", ["(N,)", "(N, 1)"])
def test_sparse_equals_keras(from_logits: bool, label_shape: str) -> None:
    y_pred = _inputs(from_logits, 4)
    y_true = np.array([0, 4, 2, 1, 3, 2])
    if label_shape == "(N, 1)":
        y_true = y_true[:, None]
    ours = pl.Poly1SparseCategoricalCrossentropy(epsilon=0.0, from_logits=from_logits, reduction=None)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None)
    _close(ours(y_true, y_pred), theirs(y_true, y_pred))


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("layout", ["(N, D)", "(N,) with (N, 1)", "(N, D, K) mean over axis 1"])
def test_binary_equals_keras(from_logits: bool, label_smoothing: float, layout: str) -> None:
    rng = np.random.default_rng(5)
    shape, axis = {
        "(N, D)": ((N, 4), -1),
        "(N,) with (N, 1)": ((N, 1), -1),
        "(N, D, K) mean over axis 1": ((N, 3, 2), 1),
    }[layout]
    z = logits(shape, 6)
    y_pred = z if from_logits else sigmoid(z)
    y_true = rng.integers(0, 2, size=shape).astype(np.float32)
    if layout == "(N,) with (N, 1)":
        y_true = y_true[:, 0]
    kw = {"from_logits": from_logits, "label_smoothing": label_smoothing, "axis": axis, "reduction": None}
    _close(
        pl.Poly1BinaryCrossentropy(epsilon=0.0, **kw)(y_true, y_pred),
        keras.losses.BinaryCrossentropy(**kw)(y_true, y_pred),
    )


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), ([0.1, 0.2, 0.3, 0.2, 0.2], 1.5), (1.0, 0.0)])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_categorical_focal_equals_keras(from_logits: bool, alpha, gamma: float, label_smoothing: float) -> None:
    y_pred = _inputs(from_logits, 7)
    y_true = one_hot(np.array([1, 0, 3, 4, 2, 2]), C)
    kw = {
        "alpha": alpha,
        "gamma": gamma,
        "from_logits": from_logits,
        "label_smoothing": label_smoothing,
        "reduction": None,
    }
    ours = pl.Poly1CategoricalFocalCrossentropy(epsilon=0.0, **kw)(y_true, y_pred)
    _close(ours, keras.losses.CategoricalFocalCrossentropy(**kw)(y_true, y_pred))


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("apply_class_balancing", [False, True])
@pytest.mark.parametrize(("gamma", "label_smoothing"), [(2.0, 0.0), (0.5, 0.1)])
def test_binary_focal_equals_keras(
    from_logits: bool, apply_class_balancing: bool, gamma: float, label_smoothing: float
) -> None:
    z = logits((N, 4), 8)
    y_pred = z if from_logits else sigmoid(z)
    y_true = np.random.default_rng(9).integers(0, 2, size=(N, 4)).astype(np.float32)
    kw = {
        "apply_class_balancing": apply_class_balancing,
        "alpha": 0.3,
        "gamma": gamma,
        "from_logits": from_logits,
        "label_smoothing": label_smoothing,
        "reduction": None,
    }
    ours = pl.Poly1BinaryFocalCrossentropy(epsilon=0.0, **kw)(y_true, y_pred)
    _close(ours, keras.losses.BinaryFocalCrossentropy(**kw)(y_true, y_pred))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weights", "sample-weights"])
def test_reductions_and_sample_weight_equal_keras(reduction, weighted: bool) -> None:
    y_pred = _inputs(True, 10)
    y_true = np.array([0, 4, 2, 1, 3, 2])
    weights = np.linspace(0.0, 2.0, N).astype(np.float32) if weighted else None
    ours = pl.Poly1SparseCategoricalCrossentropy(epsilon=0.0, from_logits=True, reduction=reduction)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    _close(ours(y_true, y_pred, sample_weight=weights), theirs(y_true, y_pred, sample_weight=weights))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["no-weights", "sample-weights"])
def test_ignore_class_equals_keras(reduction, weighted: bool) -> None:
    y_pred = logits((2, 4, C), 11)
    y_true = np.array([[0, -1, 2, 4], [-1, -1, 3, 1]])
    weights = np.linspace(0.5, 2.0, 8).reshape(2, 4).astype(np.float32) if weighted else None
    kw = {"from_logits": True, "ignore_class": -1, "reduction": reduction}
    ours = pl.Poly1SparseCategoricalCrossentropy(epsilon=0.0, **kw)(y_true, y_pred, sample_weight=weights)
    _close(ours, keras.losses.SparseCategoricalCrossentropy(**kw)(y_true, y_pred, sample_weight=weights))


# --------------------------------------------------------------------------- epsilon != 0 is the reference
def _reduce(values: np.ndarray, weights: np.ndarray | None, reduction) -> np.ndarray:
    w = np.ones_like(values) if weights is None else weights
    total = (values * w).sum()
    if reduction in ("sum_over_batch_size", "mean"):
        return np.asarray(total / values.size)
    if reduction == "mean_with_sample_weight":
        return np.asarray(total / w.sum())
    if reduction == "sum":
        return np.asarray(total)
    return values * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_poly1_sparse_matches_reference_with_weights(reduction) -> None:
    z = logits((N, C), 12)
    y_true = np.array([3, 1, 0, 4, 4, 2])
    weights = np.linspace(0.5, 1.5, N).astype(np.float32)
    got = pl.Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True, reduction=reduction)(
        y_true, z, sample_weight=weights
    )
    per_example = reference.softmax_poly_loss(z, y_true, PolySpec.poly1(2.0))
    np.testing.assert_allclose(to_np(got), _reduce(per_example, weights, reduction), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("labels", ["one-hot", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_poly1_categorical_matches_reference(from_logits: bool, labels: str, label_smoothing: float) -> None:
    z = logits((N, C), 13)
    y_pred = z if from_logits else softmax(z)
    y_true = one_hot(np.array([1, 1, 0, 4, 3, 2]), C) if labels == "one-hot" else soft_labels((N, C), 14)
    got = pl.Poly1CategoricalCrossentropy(
        epsilon=-0.5, from_logits=from_logits, label_smoothing=label_smoothing, reduction=None
    )
    exact = z if from_logits else prob_logits(y_pred)
    want = reference.softmax_poly_loss(exact, y_true, PolySpec.poly1(-0.5, label_smoothing=label_smoothing))
    np.testing.assert_allclose(to_np(got(y_true, y_pred)), want, rtol=RTOL, atol=ATOL)


def test_label_smoothing_uses_the_class_axis() -> None:
    """Smoothing spreads s / C over the classes on ``axis`` (Keras' own loss uses the last axis's size)."""
    z = logits((2, C, 3), 23)
    y_true = one_hot(np.random.default_rng(24).integers(0, C, size=(2, 3)), C, axis=1)
    loss = pl.Poly1CategoricalCrossentropy(epsilon=1.0, from_logits=True, label_smoothing=0.2, axis=1, reduction=None)
    want = reference.softmax_poly_loss(z, y_true, PolySpec.poly1(1.0, label_smoothing=0.2), axis=1)
    np.testing.assert_allclose(to_np(loss(y_true, z)), want, rtol=RTOL, atol=ATOL)


def test_ignore_class_with_epsilon_matches_reference() -> None:
    z = logits((2, 4, C), 25)
    y_true = np.array([[0, 255, 2, 4], [255, 1, 3, 1]])
    got = pl.Poly1SparseCategoricalCrossentropy(epsilon=1.0, from_logits=True, ignore_class=255)(y_true, z)
    keep = y_true != 255
    per_position = reference.softmax_poly_loss(z[keep], y_true[keep], PolySpec.poly1(1.0))
    np.testing.assert_allclose(to_np(got), per_position.mean(), rtol=RTOL, atol=ATOL)
    unreduced = pl.poly1_sparse_categorical_crossentropy(y_true, z, from_logits=True, ignore_class=255)
    assert np.all(to_np(unreduced)[~keep] == 0.0)


@pytest.mark.parametrize(
    ("family", "spec"),
    [
        ("softmax", PolySpec.drop(2)),
        ("softmax", PolySpec(epsilons=(1.0, 0.5), gamma=0.5, alpha=(1.0, 2.0, 0.5, 1.0, 1.0))),
        ("sigmoid", PolySpec(epsilons=(1.0, -0.25), gamma=1.0, alpha=0.75, label_smoothing=0.1)),
    ],
    ids=["softmax-drop2", "softmax-poly2-focal-weighted", "sigmoid-poly2-focal-smoothed"],
)
def test_polyloss_class_matches_reference(family: str, spec: PolySpec) -> None:
    z = logits((N, C), 26)
    y_true = np.array([4, 3, 2, 1, 0, 0])
    weights = np.linspace(1.0, 2.0, N).astype(np.float32)
    got = pl.PolyLoss(spec, family=family, from_logits=True)(y_true, z, sample_weight=weights)
    if family == "softmax":
        per_example = reference.softmax_poly_loss(z, y_true, spec)
    else:
        per_example = reference.sigmoid_poly_loss(z, y_true, spec).mean(axis=-1)
    np.testing.assert_allclose(to_np(got), (per_example * weights).mean(), rtol=RTOL, atol=ATOL)


def test_keras_mask_from_model_matches_keras_and_reference() -> None:
    """A Masking layer's mask reaches the loss exactly as for Keras' own loss."""
    steps, features = 4, 3
    inputs = keras.Input((steps, features))
    outputs = keras.layers.Dense(C, kernel_initializer=keras.initializers.RandomNormal(seed=1))(
        keras.layers.Masking(0.0)(inputs)
    )
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(27).normal(size=(3, steps, features)).astype(np.float32)
    x[0, 2:] = 0.0
    x[2, 1] = 0.0
    y = np.random.default_rng(28).integers(0, C, size=(3, steps))
    results = {}
    for name, loss in {
        "keras": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "ours-eps0": pl.Poly1SparseCategoricalCrossentropy(epsilon=0.0, from_logits=True),
        "ours-eps1": pl.Poly1SparseCategoricalCrossentropy(epsilon=1.0, from_logits=True),
    }.items():
        model.compile(loss=loss)
        results[name] = model.evaluate(x, y, verbose=0, batch_size=3)
    np.testing.assert_allclose(results["ours-eps0"], results["keras"], rtol=RTOL)
    kept = np.any(x != 0.0, axis=-1)
    z = to_np(model(x))
    want = reference.softmax_poly_loss(z[kept], y[kept], PolySpec.poly1(1.0)).mean()
    np.testing.assert_allclose(results["ours-eps1"], want, rtol=1e-4)


@pytest.mark.parametrize("labels", ["one-hot", "soft"])
@pytest.mark.parametrize("spec_name", ["ce", "poly1"])
def test_per_class_weight_gradients_match_reference(labels: str, spec_name: str) -> None:
    """Weighted targets never reach a fused op whose gradient assumes rows summing to 1."""
    z = logits((N, C), 30)
    y_true = one_hot(np.array([0, 1, 2, 3, 4, 0]), C) if labels == "one-hot" else soft_labels((N, C), 31)
    alpha = (0.5, 1.0, 2.0, 0.25, 1.5)
    spec = PolySpec(epsilons=() if spec_name == "ce" else (1.0,), alpha=alpha)
    loss = pl.PolyLoss(spec, from_logits=True, reduction="sum")
    grad = to_np(gradient(lambda t: loss(y_true, t), z))
    np.testing.assert_allclose(grad, reference.softmax_poly_loss_grad(z, y_true, spec), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("labels", ["one-hot", "index"])
def test_softmax_output_model_equals_keras_for_confident_predictions(labels: str) -> None:
    """With a softmax output layer and epsilon=0 the loss is Keras' own, saturated probabilities included.

    On TensorFlow Keras computes the cross-entropy from the logits behind the
    softmax; the Poly-1 classes keep that (their fused cross-entropy is Keras').
    """
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(
        C, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=30.0, seed=5)
    )(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(32).normal(size=(16, 3)).astype(np.float32)
    index = np.random.default_rng(33).integers(0, C, size=16)
    y = index if labels == "index" else one_hot(index, C)
    pairs = {
        "one-hot": (keras.losses.CategoricalCrossentropy(), pl.Poly1CategoricalCrossentropy(epsilon=0.0)),
        "index": (keras.losses.SparseCategoricalCrossentropy(), pl.Poly1SparseCategoricalCrossentropy(epsilon=0.0)),
    }
    values = []
    for loss in pairs[labels]:
        model.compile(loss=loss)
        values.append(model.evaluate(x, y, verbose=0, batch_size=16))
    assert values[0] > 1.0  # some predictions are confidently wrong
    np.testing.assert_allclose(values[1], values[0], rtol=RTOL)
