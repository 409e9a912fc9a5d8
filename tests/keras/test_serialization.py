"""Keras citizenship: get_config, from_config, keras.losses.(de)serialize and ``.keras`` save/load."""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest

import polyloss_tf as pl
from polyloss_core import PolySpec

from .helpers import logits, one_hot, to_np

# One non-default configuration per class, touching every constructor argument.
CONFIGURED = {
    "Poly1CategoricalCrossentropy": lambda: pl.Poly1CategoricalCrossentropy(
        epsilon=2.0, from_logits=True, label_smoothing=0.1, axis=-1, reduction="sum", name="cce", dtype="float32"
    ),
    "Poly1SparseCategoricalCrossentropy": lambda: pl.Poly1SparseCategoricalCrossentropy(
        epsilon=-0.5, from_logits=True, ignore_class=7, reduction="mean", axis=-1, name="scce", dtype="float32"
    ),
    "Poly1BinaryCrossentropy": lambda: pl.Poly1BinaryCrossentropy(
        epsilon=0.5,
        from_logits=True,
        label_smoothing=0.2,
        axis=-1,
        reduction="sum_over_batch_size",
        name="bce",
        dtype=None,
    ),
    "Poly1CategoricalFocalCrossentropy": lambda: pl.Poly1CategoricalFocalCrossentropy(
        epsilon=1.5,
        alpha=[0.1, 0.2, 0.3, 0.2, 0.2],
        gamma=1.5,
        from_logits=True,
        label_smoothing=0.05,
        axis=-1,
        name="cfocal",
    ),
    "Poly1BinaryFocalCrossentropy": lambda: pl.Poly1BinaryFocalCrossentropy(
        epsilon=-1.0, apply_class_balancing=True, alpha=0.4, gamma=3.0, from_logits=True, label_smoothing=0.1, axis=-1
    ),
    "PolyLoss": lambda: pl.PolyLoss(
        PolySpec(epsilons=(1.0, -0.2), gamma=0.5, alpha=(1.0, 2.0, 0.5, 1.0, 1.0)),
        family="softmax",
        from_logits=True,
        axis=-1,
        ignore_class=-1,
        reduction="sum",
        name="poly",
        dtype="float32",
    ),
}
SPARSE = {"Poly1SparseCategoricalCrossentropy", "PolyLoss"}
BINARY = {"Poly1BinaryCrossentropy", "Poly1BinaryFocalCrossentropy"}


def _data(name: str, n: int = 8, classes: int = 5):
    x = logits((n, classes), seed=len(name))
    labels = np.random.default_rng(len(name)).integers(0, classes, size=n)
    if name in SPARSE:
        return x, labels
    if name in BINARY:
        return x, np.random.default_rng(3).integers(0, 2, size=(n, classes)).astype(np.float32)
    return x, one_hot(labels, classes)


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_get_config_lists_every_constructor_argument(name: str) -> None:
    loss = CONFIGURED[name]()
    config = loss.get_config()
    arguments = set(inspect.signature(type(loss).__init__).parameters) - {"self"}
    assert set(config) == arguments
    json.dumps(config)  # JSON-safe, as .keras archives need


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_from_config_round_trip(name: str) -> None:
    loss = CONFIGURED[name]()
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    y_pred, y_true = _data(name)
    np.testing.assert_array_equal(to_np(clone(y_true, y_pred)), to_np(loss(y_true, y_pred)))


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_keras_losses_serialize_deserialize(name: str) -> None:
    loss = CONFIGURED[name]()
    payload = keras.losses.serialize(loss)
    assert payload["registered_name"] == f"polyloss>{name}"
    restored = keras.losses.deserialize(json.loads(json.dumps(payload)))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_dtype_policy_object_round_trips() -> None:
    loss = pl.PolyLoss(PolySpec.poly1(), dtype=keras.DTypePolicy("mixed_bfloat16"))
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.dtype == loss.dtype == "bfloat16"


@pytest.mark.parametrize(
    "name",
    ["poly1_categorical_crossentropy", "poly1_sparse_categorical_crossentropy", "poly1_binary_focal_crossentropy"],
)
def test_functions_are_registered(name: str) -> None:
    fn = getattr(pl, name)
    assert keras.saving.get_registered_name(fn) == f"polyloss>{name}"
    assert keras.saving.get_registered_object(f"polyloss>{name}") is fn


def _model(classes: int = 5) -> keras.Model:
    inputs = keras.Input((classes,))
    hidden = keras.layers.Dense(8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1))(
        inputs
    )
    outputs = keras.layers.Dense(classes, kernel_initializer=keras.initializers.GlorotUniform(seed=2))(hidden)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name", list(CONFIGURED))
def test_saved_model_loads_without_custom_objects(name: str, tmp_path) -> None:
    x, y = _data(name, n=16)
    model = _model()
    model.compile(optimizer="sgd", loss=CONFIGURED[name]())
    before = model.evaluate(x, y, verbose=0, batch_size=16)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss) is type(model.loss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, y, verbose=0, batch_size=16) == before


def test_saved_model_with_function_loss(tmp_path) -> None:
    x, y = _data("Poly1SparseCategoricalCrossentropy", n=16)
    model = _model()
    model.compile(optimizer="sgd", loss=pl.poly1_sparse_categorical_crossentropy)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    # The function form takes probabilities; what matters is that it comes back and agrees.
    probabilities = keras.ops.softmax(keras.ops.convert_to_tensor(x))
    want = to_np(pl.poly1_sparse_categorical_crossentropy(y, probabilities))
    got = to_np(loaded.loss(y, probabilities))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "name",
    [
        "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "BinaryCrossentropy",
        "CategoricalFocalCrossentropy",
        "BinaryFocalCrossentropy",
    ],
)
def test_arguments_are_epsilon_plus_the_keras_loss_arguments(name: str) -> None:
    ours = inspect.signature(getattr(pl, f"Poly1{name}").__init__).parameters
    theirs = inspect.signature(getattr(keras.losses, name).__init__).parameters
    assert list(ours)[:2] == ["self", "epsilon"]
    assert ours["epsilon"].default == 1.0
    assert [p for p in ours if p != "epsilon"] == list(theirs)  # same names, same order
    for argument, parameter in theirs.items():
        if argument not in ("self", "name"):
            assert ours[argument].default == parameter.default, argument
    assert ours["name"].default == "poly1_" + theirs["name"].default


@pytest.mark.parametrize(
    "name",
    [
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_crossentropy",
        "categorical_focal_crossentropy",
        "binary_focal_crossentropy",
    ],
)
def test_function_arguments_are_epsilon_plus_the_keras_function_arguments(name: str) -> None:
    ours = inspect.signature(getattr(pl, f"poly1_{name}")).parameters
    theirs = inspect.signature(getattr(keras.losses, name)).parameters
    assert list(ours)[:3] == ["y_true", "y_pred", "epsilon"]
    assert [p for p in ours if p != "epsilon"] == list(theirs)
    for argument, parameter in theirs.items():
        assert ours[argument].default == parameter.default, argument
