"""Training and compiled execution: model.fit, mixed precision, extreme logits, tracing, XLA, MirroredStrategy.

Tests that only exist on one Keras backend (XLA through ``tf.function``,
``MirroredStrategy``, ``jax.jit``) are defined or parametrized per backend, so
nothing is skipped.
"""

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
from polyloss_core import PolySpec, reference

from .helpers import ATOL, BACKEND, RTOL, gradient, logits, one_hot, to_np

ROOT = Path(__file__).resolve().parents[2]
C = 4


def _blobs(n: int = 96, seed: int = 0):
    """Four separable Gaussian blobs in 2-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=n)
    centers = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
    x = (centers[y] + rng.normal(scale=0.5, size=(n, 2))).astype(np.float32)
    return x, y


def _classifier(activation: str | None = None) -> keras.Model:
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=3))(
        inputs
    )
    outputs = keras.layers.Dense(C, activation=activation, kernel_initializer=keras.initializers.GlorotUniform(seed=4))(
        hidden
    )
    return keras.Model(inputs, outputs)


FIT_CASES = {
    "sparse-logits": (lambda: pl.Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True), None, "index"),
    "categorical-softmax-output": (lambda: pl.Poly1CategoricalCrossentropy(epsilon=1.0), "softmax", "one-hot"),
    "categorical-focal": (lambda: pl.Poly1CategoricalFocalCrossentropy(from_logits=True, alpha=None), None, "one-hot"),
    "binary-focal-sigmoid-output": (lambda: pl.Poly1BinaryFocalCrossentropy(epsilon=-1.0), "sigmoid", "one-hot"),
    "polyloss-poly3": (lambda: pl.PolyLoss(PolySpec.poly_n(1.0, 0.5, 0.25), from_logits=True), None, "index"),
}


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_model_fit_trains(case: str) -> None:
    make_loss, activation, labels = FIT_CASES[case]
    x, y = _blobs()
    target = y if labels == "index" else one_hot(y, C)
    model = _classifier(activation)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=make_loss())
    history = model.fit(x, target, epochs=8, batch_size=32, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.5 * history[0]
    predictions = np.argmax(to_np(model.predict(x, verbose=0)), axis=-1)
    assert np.mean(predictions == y) > 0.9


@pytest.mark.parametrize("labels", ["index", "one-hot"])
def test_fit_with_mixed_bfloat16_policy(labels: str) -> None:
    x, y = _blobs()
    loss = (
        pl.Poly1SparseCategoricalCrossentropy(from_logits=True)
        if labels == "index"
        else pl.Poly1CategoricalCrossentropy(from_logits=True)
    )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _classifier()
        assert model.layers[-1].compute_dtype == "bfloat16"
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        targets = y if labels == "index" else one_hot(y, C)
        history = model.fit(x, targets, epochs=6, batch_size=32, verbose=0, shuffle=False).history["loss"]
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(history))
    assert history[-1] < 0.5 * history[0]


# --------------------------------------------------------------------------- traced execution
def _tracers() -> dict:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return {"tf.function": tf.function, "tf.function-xla": lambda f: tf.function(f, jit_compile=True)}
    if BACKEND == "jax":
        import jax

        return {"jax.jit": jax.jit}
    return {}


TRACERS = _tracers()

if TRACERS:

    def _raises_in_graph(tracer: str, family: str) -> bool:
        """TensorFlow's fused sparse cross-entropy raises for a bad label in a (non-XLA) graph."""
        return tracer == "tf.function" and family == "softmax"

    @pytest.mark.parametrize("tracer", list(TRACERS))
    @pytest.mark.parametrize("family", ["softmax", "sigmoid"])
    def test_out_of_range_label_when_traced(tracer: str, family: str) -> None:
        """A compiled graph never returns a plausible number for a bad label: NaN, or TensorFlow's own error."""
        z = logits((4, C), 30)
        labels = np.array([1, C, 0, -1])
        spec = PolySpec.poly1(1.0)
        fn = TRACERS[tracer](lambda y, t: pl.poly_loss(y, t, spec, family=family, from_logits=True))
        if _raises_in_graph(tracer, family):
            import tensorflow as tf

            with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside the valid range of \[0, 4\)"):
                fn(ops.convert_to_tensor(labels), ops.convert_to_tensor(z))
            return
        got = to_np(fn(ops.convert_to_tensor(labels), ops.convert_to_tensor(z)))
        if family == "sigmoid":
            got = got.sum(axis=-1)
        assert np.isnan(got[1])
        assert np.isnan(got[3])
        good = [0, 2]
        if family == "softmax":
            want = reference.softmax_poly_loss(z[good], labels[good], spec)
        else:
            want = reference.sigmoid_poly_loss(z[good], labels[good], spec).sum(axis=-1)
        np.testing.assert_allclose(got[good], want, rtol=RTOL, atol=ATOL)

    @pytest.mark.parametrize("tracer", list(TRACERS))
    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_ignore_class_when_traced(tracer: str, smoothing: float) -> None:
        z = logits((5, C), 31)
        labels = np.array([1, 255, 0, C - 1, 3])
        spec = PolySpec.poly1(label_smoothing=smoothing)
        loss = pl.PolyLoss(spec, from_logits=True, ignore_class=255, reduction=None)
        got = to_np(TRACERS[tracer](loss)(ops.convert_to_tensor(labels), ops.convert_to_tensor(z)))
        assert got[1] == 0.0
        good = [0, 2, 3, 4]
        np.testing.assert_allclose(
            got[good], reference.softmax_poly_loss(z[good], labels[good], spec), rtol=RTOL, atol=ATOL
        )
        bad = np.array([1, 255, 0, C, 3])
        if _raises_in_graph(tracer, "softmax"):
            import tensorflow as tf

            with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside the valid range"):
                TRACERS[tracer](loss)(ops.convert_to_tensor(bad), ops.convert_to_tensor(z))
        else:
            got = to_np(TRACERS[tracer](loss)(ops.convert_to_tensor(bad), ops.convert_to_tensor(z)))
            assert got[1] == 0.0
            assert np.isnan(got[3])

    TRACED_LOSSES = {
        "sparse": (lambda: pl.Poly1SparseCategoricalCrossentropy(from_logits=True), "index", -1),
        "sparse-axis-1": (lambda: pl.Poly1SparseCategoricalCrossentropy(from_logits=True, axis=1), "index-3d", 1),
        "categorical-focal": (lambda: pl.Poly1CategoricalFocalCrossentropy(from_logits=True, gamma=1.5), "one-hot", -1),
        "categorical-soft": (lambda: pl.Poly1CategoricalCrossentropy(from_logits=True), "soft", -1),
        "categorical-axis-1": (lambda: pl.Poly1CategoricalCrossentropy(from_logits=True, axis=1), "one-hot-3d", 1),
        "binary-focal": (lambda: pl.Poly1BinaryFocalCrossentropy(from_logits=True, gamma=0.5), "one-hot", -1),
        "polyloss-sigmoid": (
            lambda: pl.PolyLoss(PolySpec.poly1_focal(), family="sigmoid", from_logits=True),
            "index",
            -1,
        ),
    }

    def _traced_inputs(kind: str):
        index = np.arange(8) % C
        if kind == "index":
            return logits((8, C), 32), index
        if kind == "index-3d":
            return logits((2, C, 4), 33), index.reshape(2, 4)
        if kind == "one-hot":
            return logits((8, C), 34), one_hot(index, C)
        if kind == "one-hot-3d":
            return logits((2, C, 4), 35), one_hot(index.reshape(2, 4), C, axis=1)
        return logits((8, C), 36), np.random.default_rng(37).dirichlet(np.ones(C), size=8).astype(np.float32)

    @pytest.mark.parametrize("tracer", list(TRACERS))
    @pytest.mark.parametrize("name", list(TRACED_LOSSES))
    def test_traced_loss_and_gradient_equal_eager(tracer: str, name: str) -> None:
        """Labels enter the compiled function as arguments, so every run-time branch is really traced."""
        make_loss, kind, _ = TRACED_LOSSES[name]
        loss = make_loss()
        z, y = _traced_inputs(kind)
        y, z = ops.convert_to_tensor(y), ops.convert_to_tensor(z)

        def value_and_grad(labels, t):
            return loss(labels, t), gradient(lambda u: loss(labels, u), t)

        eager = [to_np(v) for v in value_and_grad(y, z)]
        if BACKEND == "jax":
            import jax

            value = TRACERS[tracer](lambda labels, t: loss(labels, t))(y, z)
            grad = TRACERS[tracer](jax.grad(lambda t, labels: loss(labels, t)))(z, y)
            traced = [to_np(value), to_np(grad)]
        else:
            traced = [to_np(v) for v in TRACERS[tracer](value_and_grad)(y, z)]
        np.testing.assert_allclose(traced[0], eager[0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(traced[1], eager[1], rtol=1e-4, atol=1e-6)


if BACKEND == "tensorflow":

    def test_fit_with_jit_compile() -> None:
        x, y = _blobs()
        model = _classifier()
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=pl.Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True),
            jit_compile=True,
        )
        history = model.fit(x, y, epochs=6, batch_size=32, verbose=0, shuffle=False).history["loss"]
        assert np.all(np.isfinite(history))
        assert history[-1] < 0.5 * history[0]

    MIRRORED_SCRIPT = textwrap.dedent(
        """
        import os, sys
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import numpy as np
        import keras
        import polyloss_tf as pl

        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 3)).astype("float32")
        y = rng.integers(0, 4, size=64)
        w = rng.uniform(0.5, 2.0, size=64).astype("float32")

        def build(make_loss):
            inputs = keras.Input((3,))
            hidden = keras.layers.Dense(8, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed=1))(inputs)
            outputs = keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(seed=2))(hidden)
            model = keras.Model(inputs, outputs)
            model.compile(optimizer=keras.optimizers.SGD(0.2), loss=make_loss())
            return model

        # Integer labels, and the same labels one-hot (the TensorFlow path with a custom gradient).
        cases = {
            "sparse": (lambda: pl.Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True), y),
            "categorical": (
                lambda: pl.Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True),
                np.eye(4, dtype="float32")[y],
            ),
        }
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        ok = True
        for name, (make_loss, labels) in cases.items():
            single = build(make_loss)
            single.fit(x, labels, sample_weight=w, batch_size=16, epochs=3, shuffle=False, verbose=0)
            with strategy.scope():
                mirrored = build(make_loss)
            mirrored.fit(x, labels, sample_weight=w, batch_size=16, epochs=3, shuffle=False, verbose=0)
            initial = build(make_loss)
            moved = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), initial.get_weights()))
            diff = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
            print(f"{name}: moved={moved:.3e} diff={diff:.3e}")
            ok = ok and moved > 1e-2 and diff < 1e-5
        sys.exit(0 if ok else 1)
        """
    )

    def test_mirrored_strategy_matches_single_device() -> None:
        """Two replicas over logical CPUs train to the single-device weights (global-batch reduction)."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        result = subprocess.run(
            [sys.executable, "-c", MIRRORED_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert "categorical: moved=" in result.stdout
