"""Bad input (SPEC section 6): clear errors that name the argument and show the value or shape."""

from __future__ import annotations

import numpy as np
import pytest

import polyloss_tf as pl
from polyloss_core import PolySpec

from .helpers import logits, one_hot

Z = logits((3, 5), 40)
Y_INDEX = np.array([0, 1, 2])
Y_ONE_HOT = one_hot(Y_INDEX, 5)


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: pl.Poly1CategoricalCrossentropy(epsilon=-2.0), ValueError, r"epsilon=-2\.0"),
        (lambda: pl.Poly1SparseCategoricalCrossentropy(epsilon=float("nan")), ValueError, r"epsilon=nan"),
        (lambda: pl.Poly1BinaryCrossentropy(epsilon="1"), TypeError, r"epsilon must be a real number, got '1'"),
        (lambda: pl.Poly1BinaryFocalCrossentropy(epsilon=True), TypeError, r"epsilon must be a real number, got True"),
        (lambda: pl.Poly1CategoricalCrossentropy(reduction="average"), ValueError, r"`reduction`.*reduction=average"),
        (lambda: pl.PolyLoss(PolySpec.poly1(), reduction="auto"), ValueError, r"`reduction`.*reduction=auto"),
        (lambda: pl.Poly1CategoricalCrossentropy(axis=True), TypeError, r"axis must be an int, got True"),
        (lambda: pl.Poly1SparseCategoricalCrossentropy(axis=1.0), TypeError, r"axis must be an int, got 1\.0"),
        (
            lambda: pl.Poly1CategoricalCrossentropy(from_logits="yes"),
            TypeError,
            r"from_logits must be a bool, got 'yes'",
        ),
        (
            lambda: pl.Poly1CategoricalCrossentropy(label_smoothing=1.0),
            ValueError,
            r"label_smoothing must be in \[0, 1\), got label_smoothing=1\.0",
        ),
        (lambda: pl.Poly1CategoricalFocalCrossentropy(gamma=-1.0), ValueError, r"gamma must be >= 0, got gamma=-1\.0"),
        (
            lambda: pl.Poly1CategoricalFocalCrossentropy(alpha=[0.5, -1.0]),
            ValueError,
            r"alpha\[1\] must be >= 0, got -1\.0",
        ),
        (lambda: pl.Poly1BinaryFocalCrossentropy(alpha=1.5), ValueError, r"alpha must be in \[0, 1\].*got alpha=1\.5"),
        (
            lambda: pl.Poly1BinaryFocalCrossentropy(apply_class_balancing=1),
            TypeError,
            r"apply_class_balancing must be a bool, got 1",
        ),
        (
            lambda: pl.Poly1SparseCategoricalCrossentropy(ignore_class=1.5),
            TypeError,
            r"ignore_class must be an int, got 1\.5",
        ),
        (lambda: pl.PolyLoss({"epsilons": [1.0], "beta": 2}), ValueError, r"unknown PolySpec field"),
        (lambda: pl.PolyLoss("poly1"), TypeError, r"spec must be a polyloss_core.PolySpec"),
        (
            lambda: pl.PolyLoss(PolySpec.poly1(), family="softmax2"),
            ValueError,
            r"family must be one of .*, got 'softmax2'",
        ),
        (
            lambda: pl.PolyLoss(PolySpec.focal(2.0, (0.5, 0.5)), family="sigmoid"),
            ValueError,
            r"alpha must be a single number",
        ),
        (lambda: pl.PolyLoss(PolySpec.poly1(), family="sigmoid", ignore_class=0), ValueError, r"family='sigmoid'"),
    ],
    ids=lambda value: None if callable(value) or isinstance(value, type) else str(value)[:40],
)
def test_bad_configuration_raises_at_construction(make, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make()


def test_functional_forms_check_arguments_before_computing() -> None:
    with pytest.raises(ValueError, match=r"epsilon=-1\.5"):
        pl.poly1_categorical_crossentropy(Y_ONE_HOT, Z, epsilon=-1.5)
    with pytest.raises(TypeError, match=r"axis must be an int, got False"):
        pl.poly1_binary_crossentropy(Y_ONE_HOT, Z, axis=False)
    with pytest.raises(TypeError, match=r"spec must be a polyloss_core.PolySpec, got dict"):
        pl.poly_loss(Y_INDEX, Z, {"epsilons": [1.0]})


# --------------------------------------------------------------------------- tensors
def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"y_true must have shape \(3, 5\).*y_pred.shape=\(3, 5\).*got \(3, 4\)"):
        pl.Poly1CategoricalCrossentropy(from_logits=True)(one_hot(Y_INDEX, 4), Z)
    with pytest.raises(ValueError, match=r"y_true must have shape \(3,\).*got \(4,\)"):
        pl.Poly1SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 1, 2, 3]), Z)
    with pytest.raises(ValueError, match=r"y_true must have shape \(3,\), class indices"):
        pl.poly1_sparse_categorical_crossentropy(Y_ONE_HOT, Z)
    with pytest.raises(ValueError, match=r"y_true must have shape \(3, 5\), per-class targets"):
        pl.poly1_categorical_crossentropy(Y_INDEX, Z)


def test_axis_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"axis=2 is out of range for y_pred of shape \(3, 5\)"):
        pl.poly_loss(Y_INDEX, Z, PolySpec.poly1(), axis=2)


@pytest.mark.parametrize("bad", [-1, 5, 17])
@pytest.mark.parametrize("family", ["softmax", "sigmoid"])
def test_out_of_range_labels_raise_eagerly(bad: int, family: str) -> None:
    labels = np.array([0, bad, 1])
    with pytest.raises(ValueError, match=rf"class index {bad}, outside the valid range \[0, 5\)"):
        pl.poly_loss(labels, Z, PolySpec.poly1(), family=family, from_logits=True)


def test_out_of_range_labels_raise_through_the_classes() -> None:
    with pytest.raises(ValueError, match=r"class index 9, outside the valid range \[0, 5\)"):
        pl.Poly1SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 9, 1]), Z)
    with pytest.raises(ValueError, match=r"class index -3, outside the valid range \[0, 5\) .*\(ignore_class=-1\)"):
        pl.Poly1SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)(np.array([-1, -3, 1]), Z)


def test_fractional_class_index_raises() -> None:
    with pytest.raises(ValueError, match=r"integer class indices, got the value 1\.5"):
        pl.Poly1SparseCategoricalCrossentropy(from_logits=True)(np.array([0.0, 1.5, 2.0]), Z)


def test_sigmoid_targets_outside_unit_interval_raise() -> None:
    targets = np.array([[0.0, 1.0, 2.0, 0.0, 0.0]] * 3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"y_true values must lie in \[0, 1\], got values in \[0\.0, 2\.0\]"):
        pl.Poly1BinaryCrossentropy(from_logits=True)(targets, Z)


def test_dtypes_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"y_pred must hold floating values .* got dtype int32"):
        pl.poly_loss(Y_INDEX, np.ones((3, 5), dtype=np.int32), PolySpec.poly1())
    with pytest.raises(TypeError, match=r"y_true must hold numbers .* got dtype <U1"):
        pl.poly_loss(np.array(["a", "b", "c"]), Z, PolySpec.poly1())


def test_per_class_alpha_must_match_classes() -> None:
    loss = pl.Poly1CategoricalFocalCrossentropy(alpha=[1.0, 2.0, 3.0], from_logits=True)
    with pytest.raises(ValueError, match=r"alpha has 3 per-class weights but the input has 5 classes"):
        loss(Y_ONE_HOT, Z)


def test_scalar_prediction_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"y_pred must have at least one dimension"):
        pl.poly_loss(np.array(0), np.array(1.0, dtype=np.float32), PolySpec.poly1())
