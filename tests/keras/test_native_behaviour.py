"""Where Keras' own losses set the convention, the Poly-1 losses follow it (each test names what it protects)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import polyloss_tf as pl
from polyloss_core import PolySpec

from .helpers import BACKEND, logits, to_np

ROOT = Path(__file__).resolve().parents[2]
SINGLE_CLASS_WARNING = r"expected y_pred.shape to be \(batch_size, num_classes\) with num_classes > 1"


# --------------------------------------------------------------------------- probabilities outside [0, 1]
OUT_OF_RANGE_PROBABILITY_LOSSES = {
    "Poly1BinaryCrossentropy": lambda: pl.Poly1BinaryCrossentropy(),
    "Poly1BinaryFocalCrossentropy": lambda: pl.Poly1BinaryFocalCrossentropy(),
    "PolyLoss-sigmoid-poly1(2)": lambda: pl.PolyLoss(PolySpec.poly1(2.0), family="sigmoid"),
}


@pytest.mark.parametrize("name", list(OUT_OF_RANGE_PROBABILITY_LOSSES))
def test_probabilities_outside_unit_interval_are_clipped_like_keras(name: str) -> None:
    """A linear output read as probabilities: clipped as Keras' BCE clips it, never a negative loss."""
    y_true = np.array([[1.0], [0.0]], np.float32)
    y_pred = np.array([[1.5], [-0.5]], np.float32)
    ours = float(to_np(OUT_OF_RANGE_PROBABILITY_LOSSES[name]()(y_true, y_pred)))
    keras_bce = float(to_np(keras.losses.BinaryCrossentropy()(y_true, y_pred)))
    assert ours >= 0.0
    np.testing.assert_allclose(ours, keras_bce, atol=1e-6)


# --------------------------------------------------------------------------- one class on the class axis
def test_sparse_loss_with_one_class_returns_zero_like_keras() -> None:
    y_true, y_pred = np.array([0, 0]), np.array([[0.3], [-1.2]], np.float32)
    ours = pl.Poly1SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred)
    assert float(to_np(ours)) == float(to_np(theirs)) == 0.0


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (pl.Poly1CategoricalCrossentropy, keras.losses.CategoricalCrossentropy),
        (pl.Poly1CategoricalFocalCrossentropy, keras.losses.CategoricalFocalCrossentropy),
    ],
)
def test_categorical_losses_warn_about_one_class_like_keras(ours, theirs) -> None:
    y_true, y_pred = np.ones((2, 1), np.float32), np.array([[0.3], [-1.2]], np.float32)
    with pytest.warns(SyntaxWarning, match=SINGLE_CLASS_WARNING):
        theirs(from_logits=True)(y_true, y_pred)
    with pytest.warns(SyntaxWarning, match=SINGLE_CLASS_WARNING):
        ours(from_logits=True)(y_true, y_pred)


# --------------------------------------------------------------------------- compiled graphs never hide bad targets
def _compilers() -> dict:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return {"tf.function": tf.function, "xla": lambda f: tf.function(f, jit_compile=True)}
    if BACKEND == "jax":
        import jax

        return {"jax.jit": jax.jit}
    return {}


COMPILERS = _compilers()

if COMPILERS:

    @pytest.mark.parametrize("compiler", list(COMPILERS))
    def test_compiled_binary_crossentropy_gives_nan_for_targets_outside_unit_interval(compiler: str) -> None:
        """Eagerly such targets raise; compiled, the example's loss is NaN (SPEC section 6), not a number."""
        z = logits((3, 2), 50)
        t = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, -0.5]], np.float32)
        fn = COMPILERS[compiler](lambda y, p: pl.poly1_binary_crossentropy(y, p, from_logits=True))
        got = to_np(fn(ops.convert_to_tensor(t), ops.convert_to_tensor(z)))
        assert np.isfinite(got[0])
        assert np.isnan(got[1:]).all()


if BACKEND == "jax":

    def test_jitted_losses_copy_nothing_to_the_host() -> None:
        """The label checks of a compiled call stay on the device (no transfer, counted by JAX's guard)."""
        import jax

        z = jax.device_put(logits((8, 5), 51))
        y = jax.device_put(np.arange(8) % 5)
        q = jax.device_put(np.eye(5, dtype=np.float32)[np.arange(8) % 5])
        sparse = jax.jit(lambda a, b: pl.poly1_sparse_categorical_crossentropy(a, b, from_logits=True))
        dense = jax.jit(lambda a, b: pl.poly1_categorical_crossentropy(a, b, from_logits=True))
        sparse(y, z).block_until_ready(), dense(q, z).block_until_ready()  # compile first
        with jax.transfer_guard("disallow"):
            sparse(y, z).block_until_ready()
            dense(q, z).block_until_ready()

    def test_eager_calls_on_an_accelerator_read_nothing_back(monkeypatch: pytest.MonkeyPatch) -> None:
        """Eager losses on arrays that report a GPU device read no value back (the label checks are skipped
        there, SPEC section 6). Reads are counted, not raised: ``_validate.host_values`` swallows errors."""
        import jax

        z = jax.numpy.asarray(logits((8, 5), 52))
        y = jax.numpy.asarray(np.arange(8) % 5)
        q = jax.nn.one_hot(y, 5)
        calls = {
            "sparse": (pl.Poly1SparseCategoricalCrossentropy(from_logits=True), y),
            "categorical": (pl.Poly1CategoricalCrossentropy(from_logits=True), q),
            "categorical focal": (pl.Poly1CategoricalFocalCrossentropy(from_logits=True), q),
            "binary focal": (pl.Poly1BinaryFocalCrossentropy(from_logits=True), q),
        }
        reads: list[str] = []

        def counting(name: str, original: object) -> object:
            def read(value: object, *args: object, **kwargs: object) -> object:
                if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
                    reads.append(name)
                return original(value, *args, **kwargs)  # type: ignore[operator]

            return read

        array_type = type(z)

        class _GPU:
            platform = "gpu"

        for name in ("__array__", "__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
            monkeypatch.setattr(array_type, name, counting(name, getattr(array_type, name)))
        for name in ("asarray", "array"):
            monkeypatch.setattr(np, name, counting(f"np.{name}", getattr(np, name)))
        import inspect

        cpu_device, with_gpu = inspect.getattr_static(array_type, "device"), {}
        for name, (loss, labels) in calls.items():
            reads.clear()
            loss(labels, z)
            on_cpu = list(reads)  # CPU labels are read for the eager checks: the counting works
            monkeypatch.setattr(array_type, "device", property(lambda self: _GPU()))
            reads.clear()
            out = loss(labels, z)
            with_gpu[name] = list(reads)
            monkeypatch.setattr(array_type, "device", cpu_device)
            assert np.isfinite(np.asarray(out)), name
            if name in ("sparse", "binary focal"):
                assert on_cpu, name
        assert with_gpu == {key: [] for key in calls}, with_gpu


# --------------------------------------------------------------------------- loading a saved model
SAVE = """
import keras, numpy as np, polyloss_tf
inputs = keras.Input((3,))
model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
model.compile(optimizer="sgd", loss=polyloss_tf.Poly1SparseCategoricalCrossentropy(from_logits=True))
model.save({path!r})
"""
LOAD = """
import keras{extra}
try:
    model = keras.saving.load_model({path!r})
    print("loaded", type(model.loss).__name__)
except TypeError as error:
    print("error", error)
"""


def _fresh(code: str) -> str:
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return (done.stdout.strip().splitlines() or [""])[-1]


def test_loading_a_saved_model_needs_the_import_and_the_error_says_which(tmp_path) -> None:
    """As docs/keras.md says: ``import polyloss_tf`` before ``load_model``; without it Keras names our module."""
    path = str(tmp_path / "m.keras")
    _fresh(SAVE.format(path=path))
    without = _fresh(LOAD.format(path=path, extra=""))
    assert without.startswith("error Could not locate class 'Poly1SparseCategoricalCrossentropy'")
    assert "'module': 'polyloss_tf.losses'" in without
    assert _fresh(LOAD.format(path=path, extra=", polyloss_tf")) == "loaded Poly1SparseCategoricalCrossentropy"
