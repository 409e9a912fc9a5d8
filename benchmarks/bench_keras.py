"""polyloss_tf against Keras' own losses on the TensorFlow backend, for the whole (shape x variant) matrix.

Each contender is one ``tf.function`` step that returns the loss and its
gradient with respect to the logits, in graph mode (or compiled by XLA with
``--xla``), timed for every shape and variant of ``benchmarks/cases.py`` with
the shared loop of ``benchmarks/harness.py``.

Usage::

    python benchmarks/bench_keras.py [--quick | --dry-run] [--xla] [--only TEXT] [--json PATH]

Contenders (every loss takes logits, ``from_logits=True``, default reduction;
classes last, Keras' convention):

* native: ``SparseCategoricalCrossentropy`` for integer labels,
  ``CategoricalCrossentropy`` for one-hot and soft labels and, as Keras' sparse
  loss has no ``label_smoothing``, for smoothed one-hot labels;
  ``BinaryCrossentropy`` for the sigmoid variant.
* ours: ``Poly1SparseCategoricalCrossentropy``, ``Poly1CategoricalCrossentropy``,
  ``PolyLoss`` with a ``PolySpec`` (Poly-3), ``Poly1CategoricalFocalCrossentropy``
  (one-hot labels, like the Keras loss it extends), ``Poly1BinaryFocalCrossentropy``.
* peers: ``CategoricalFocalCrossentropy`` and ``BinaryFocalCrossentropy``, with
  the same ``alpha``, ``gamma`` and class balancing as ours.

TensorFlow runs with one intra-op and one inter-op thread, and the clock is the
process' CPU time. Peak memory is what the TensorFlow CPU allocator holds at
the peak of a warm step above what it held before (``get_memory_info``), each
contender in its own fresh subprocess in a full run.

``run(quick)`` returns one dict per (contender, shape, variant) with at least
``framework``, ``case``, ``shape``, ``ours_s``, ``native_s``, ``ratio`` and
``mem_ratio``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from cases import ALPHA, EPSILON, GAMMA, SMOOTHING, Shape, Variant, make_inputs, spec_for
from harness import Settings, ensure_src_importable, pin_to_one_cpu, reexec_if_needed, time_group
from matrix import Contender, Group, Suite, cli

ensure_src_importable()
if "--keras-jax" in sys.argv:  # the focused soft-target rows on Keras' JAX backend (see focus_jax)
    os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# ``--xla`` is passed on to the memory subprocesses through the environment.
XLA_ENV = "POLYLOSS_BENCH_KERAS_XLA"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import polyloss_tf  # noqa: E402


def _step(loss: Any, xla: bool) -> Callable[[Any, Any], Any]:
    """``tf.function(jit_compile=xla)`` returning the loss and its gradient with respect to the logits."""

    @tf.function(jit_compile=xla)
    def step(logits: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(labels, logits)
        return value, tape.gradient(value, logits)

    return step


class Step:
    """The step of one loss, bound to its inputs; calling it waits for the result."""

    def __init__(self, loss: Any, logits: Any, labels: Any, xla: bool) -> None:
        self.function = _step(loss, xla)
        self.logits, self.labels = logits, labels

    def __call__(self) -> None:
        value, _ = self.function(self.logits, self.labels)
        value.numpy()  # both outputs come from one call; this waits for it


class KerasSuite(Suite):
    def __init__(self, xla: bool = False) -> None:
        super().__init__("keras-tf-xla" if xla else "keras-tf", __file__, memory_per_group=False, channels_last=True)
        self.xla = xla

    def setup(self) -> None:
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"bench_keras measures the TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}"
            )
        if not getattr(KerasSuite, "_threads_set", False):
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            KerasSuite._threads_set = True
        keras.utils.set_random_seed(0)
        tf.get_logger().setLevel("ERROR")  # every contender is its own tf.function: no retracing warnings

    def versions(self) -> dict[str, str]:
        return {"keras": keras.__version__, "tensorflow": tf.__version__}

    def group(self, shape: Shape, variant: Variant) -> Group:
        arrays = make_inputs(shape, variant, channels_last=True)
        logits = tf.constant(arrays["logits"])
        labels = {kind: tf.constant(array) for kind, array in arrays.items() if kind != "logits"}
        losses = keras.losses
        group = Group(lambda loss, kind: Step(loss, logits, labels[kind], self.xla))
        add = group.add

        key = variant.key
        if key in ("poly1-int", "poly3-int"):
            add("native", "SparseCategoricalCrossentropy", "native",
                losses.SparseCategoricalCrossentropy(from_logits=True), "index", "sparse-ce:index")  # fmt: skip
        if key == "poly1-int":
            add("ours", "Poly1SparseCategoricalCrossentropy", "ours",
                polyloss_tf.Poly1SparseCategoricalCrossentropy(epsilon=EPSILON, from_logits=True), "index")  # fmt: skip
        elif key in ("poly1-onehot", "poly1-soft", "poly1-focal-softmax"):
            labels_kind = "soft" if key == "poly1-soft" else "one-hot"
            add("native", "CategoricalCrossentropy", "native",
                losses.CategoricalCrossentropy(from_logits=True), labels_kind, f"ce:{labels_kind}")  # fmt: skip
            if key == "poly1-focal-softmax":
                add("ours", "Poly1CategoricalFocalCrossentropy", "ours",
                    polyloss_tf.Poly1CategoricalFocalCrossentropy(
                        epsilon=EPSILON, alpha=ALPHA, gamma=GAMMA, from_logits=True), "one-hot")  # fmt: skip
                add("peer-keras", "keras CategoricalFocalCrossentropy", "peer",
                    losses.CategoricalFocalCrossentropy(alpha=ALPHA, gamma=GAMMA, from_logits=True), "one-hot")  # fmt: skip
            else:
                add("ours", "Poly1CategoricalCrossentropy", "ours",
                    polyloss_tf.Poly1CategoricalCrossentropy(epsilon=EPSILON, from_logits=True), labels_kind)  # fmt: skip
        elif key == "poly1-smooth":
            add("native", f"CategoricalCrossentropy(label_smoothing={SMOOTHING})", "native",
                losses.CategoricalCrossentropy(from_logits=True, label_smoothing=SMOOTHING), "one-hot")  # fmt: skip
            add("ours", f"Poly1CategoricalCrossentropy(label_smoothing={SMOOTHING})", "ours",
                polyloss_tf.Poly1CategoricalCrossentropy(
                    epsilon=EPSILON, from_logits=True, label_smoothing=SMOOTHING), "one-hot")  # fmt: skip
        elif key == "poly3-int":
            add("ours", "PolyLoss(PolySpec.poly_n)", "ours",
                polyloss_tf.PolyLoss(spec_for(key), from_logits=True), "index")  # fmt: skip
        elif key == "poly1-focal-sigmoid":
            focal_args = {"apply_class_balancing": True, "alpha": ALPHA, "gamma": GAMMA, "from_logits": True}
            add("native", "BinaryCrossentropy", "native", losses.BinaryCrossentropy(from_logits=True), "binary")
            add("ours", "Poly1BinaryFocalCrossentropy", "ours",
                polyloss_tf.Poly1BinaryFocalCrossentropy(epsilon=EPSILON, **focal_args), "binary")  # fmt: skip
            add("peer-keras", "keras BinaryFocalCrossentropy", "peer",
                losses.BinaryFocalCrossentropy(**focal_args), "binary")  # fmt: skip
        else:
            raise ValueError(f"unknown variant {key!r}")
        return group

    def peak_bytes(self, shape: Shape, variant: Variant, contender: Contender) -> int:
        for _ in range(2):
            contender.step()  # trace, compile and reach the steady state
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        contender.step()
        return int(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)


# --------------------------------------------------------------------------- focused rows (issue: soft targets, focal, small heads)
FOCUS_SOFTMAX = {"classification": (4096, 1000), "segmentation": (8, 128, 128, 21), "many-small": (65536, 10)}
FOCUS_SIGMOID = {"detection-4000": (8, 4000, 80), "many-small-sigmoid": (65536, 10)}
SMALL_HEADS = ((32, 10), (256, 10))


class EagerStep:
    """One eager forward + backward (``tf.GradientTape``, no ``tf.function``): the per-call overhead."""

    def __init__(self, loss: Any, logits: Any, labels: Any) -> None:
        self.loss, self.logits, self.labels = loss, logits, labels

    def __call__(self) -> None:
        with tf.GradientTape() as tape:
            tape.watch(self.logits)
            value = self.loss(self.labels, self.logits)
        tape.gradient(value, self.logits).numpy()


def _peak(step: Callable[[], None]) -> int:
    step()
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    step()
    return int(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)


def focus_groups(xla: bool) -> list[tuple[str, str, dict[str, Callable[[], None]]]]:
    """``(shape, case, {"native": step, "ours": step})`` for the rows of the soft-target / focal / small-head work."""
    rng = np.random.default_rng(0)
    losses, out = keras.losses, []
    for key, dims in FOCUS_SOFTMAX.items():
        z = tf.constant(rng.normal(scale=2.0, size=dims).astype(np.float32))
        index = rng.integers(0, dims[-1], size=dims[:-1])
        soft = rng.dirichlet(np.ones(dims[-1]), size=dims[:-1]).astype(np.float32)
        for case, labels in (("soft", soft), ("one-hot", np.eye(dims[-1], dtype=np.float32)[index])):
            y = tf.constant(labels)
            steps = {"native": Step(losses.CategoricalCrossentropy(from_logits=True), z, y, xla)}
            steps["ours"] = Step(polyloss_tf.Poly1CategoricalCrossentropy(from_logits=True), z, y, xla)
            out.append((f"{key} {dims}", f"Poly-1, {case} targets", steps))
        y = tf.constant(index)
        steps = {"native": Step(losses.SparseCategoricalCrossentropy(from_logits=True), z, y, xla)}
        steps["ours"] = Step(polyloss_tf.Poly1SparseCategoricalCrossentropy(from_logits=True), z, y, xla)
        out.append((f"{key} {dims}", "Poly-1, integer labels", steps))
    focal = {"apply_class_balancing": True, "alpha": ALPHA, "gamma": GAMMA, "from_logits": True}
    for key, dims in FOCUS_SIGMOID.items():
        z = tf.constant(rng.normal(scale=2.0, size=dims).astype(np.float32))
        t = tf.constant((rng.random(dims) < 0.01).astype(np.float32))
        steps = {"native": Step(losses.BinaryFocalCrossentropy(**focal), z, t, xla)}
        steps["ours"] = Step(polyloss_tf.Poly1BinaryFocalCrossentropy(epsilon=EPSILON, **focal), z, t, xla)
        out.append((f"{key} {dims}", "sigmoid Poly-1 focal vs keras BinaryFocalCrossentropy", steps))
    if not xla:
        for dims in SMALL_HEADS:
            z = tf.constant(rng.normal(size=dims).astype(np.float32))
            y = tf.constant(rng.integers(0, dims[-1], size=dims[0]))
            steps = {"native": EagerStep(losses.SparseCategoricalCrossentropy(from_logits=True), z, y)}
            steps["ours"] = EagerStep(polyloss_tf.Poly1SparseCategoricalCrossentropy(from_logits=True), z, y)
            out.append((f"small head {dims}", "Poly-1, integer labels, eager", steps))
    return out


def focus(xla: bool, budget_s: float, only: str = "") -> list[dict[str, Any]]:
    """Time (and measure in-process peak memory of) the focused rows; ratios are ours / native."""
    KerasSuite(xla).setup()
    settings = Settings("focus", budget_s=budget_s, block_s=0.05, min_rounds=5, max_rounds=41, warmup=2)
    rows = []
    for shape, case, steps in focus_groups(xla):
        if only not in f"{shape} {case}":
            continue
        timing = time_group(steps, "native", settings)
        memory = {name: _peak(step) for name, step in steps.items()}
        rows.append({
            "shape": shape, "case": case, "xla": xla, "ratio": timing["ours"].ratio,
            "iqr": (timing["ours"].ratio_q1, timing["ours"].ratio_q3), "ms": (timing["ours"].seconds * 1e3,
            timing["native"].seconds * 1e3), "mem_ratio": memory["ours"] / max(memory["native"], 1),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def focus_jax(budget_s: float) -> None:
    """Poly-1 with target rows on Keras' JAX backend: ``jax.jit`` of value and gradient, compiled temp memory."""
    import jax

    settings = Settings("focus", budget_s=budget_s, block_s=0.05, min_rounds=5, max_rounds=31, warmup=2)
    rng = np.random.default_rng(0)
    groups = []
    for dims in FOCUS_SOFTMAX.values():
        z = jax.numpy.asarray(rng.normal(scale=2.0, size=dims).astype(np.float32))
        index = rng.integers(0, dims[-1], size=dims[:-1])
        soft = rng.dirichlet(np.ones(dims[-1]), size=dims[:-1]).astype(np.float32)
        for case, labels in (("soft", soft), ("one-hot", np.eye(dims[-1], dtype=np.float32)[index])):
            native, ours = (
                keras.losses.CategoricalCrossentropy(from_logits=True),
                polyloss_tf.Poly1CategoricalCrossentropy(from_logits=True),
            )
            groups.append((dims, f"keras-jax Poly-1, {case} targets", z, labels, native, ours))
    focal = {"apply_class_balancing": True, "alpha": ALPHA, "gamma": GAMMA, "from_logits": True}
    for dims in FOCUS_SIGMOID.values():
        z = jax.numpy.asarray(rng.normal(scale=2.0, size=dims).astype(np.float32))
        t = (rng.random(dims) < 0.01).astype(np.float32)
        native = keras.losses.BinaryFocalCrossentropy(**focal)
        ours = polyloss_tf.Poly1BinaryFocalCrossentropy(epsilon=EPSILON, **focal)
        groups.append((dims, "keras-jax sigmoid Poly-1 focal vs keras BinaryFocalCrossentropy", z, t, native, ours))
    for dims, case, z, labels, native, ours in groups:
        q, steps, temp = jax.numpy.asarray(labels), {}, {}
        for name, loss in (("native", native), ("ours", ours)):
            fn = jax.jit(jax.value_and_grad(lambda t, y, loss=loss: loss(y, t)))
            temp[name] = fn.lower(z, q).compile().memory_analysis().temp_size_in_bytes
            steps[name] = lambda fn=fn, q=q, z=z: fn(z, q)[1].block_until_ready()
        timed = time_group(steps, "native", settings)["ours"]
        row = {"shape": f"{dims}", "case": case, "ratio": timed.ratio}
        row.update(iqr=(timed.ratio_q1, timed.ratio_q3), mem_ratio=temp["ours"] / max(temp["native"], 1))
        print(json.dumps(row), flush=True)


def run(quick: bool = False, dry: bool = False, xla: bool = False) -> list[dict[str, Any]]:
    """Benchmark rows (``quick``: a smoke run; ``dry``: tiny shapes, every loss once, no timing)."""
    return KerasSuite(xla).run(quick, dry)


def main(argv: list[str]) -> int:
    if "--keras-jax" in argv:  # python benchmarks/bench_keras.py --keras-jax [BUDGET_S]; one CPU, as bench_jax
        pin_to_one_cpu()
        numbers = [float(arg) for arg in argv if arg[0].isdigit()]
        focus_jax(numbers[0] if numbers else 6.0)
        sys.stdout.flush()
        os._exit(0)
    if "--focus" in argv:  # python benchmarks/bench_keras.py --focus [--xla] [BUDGET_S] [TEXT]
        reexec_if_needed(__file__, argv)
        numbers = [float(arg) for arg in argv if arg[0].isdigit()]
        text = [arg for arg in argv if not arg[0].isdigit() and not arg.startswith("--")]
        focus("--xla" in argv, numbers[0] if numbers else 6.0, text[0] if text else "")
        sys.stdout.flush()
        os._exit(0)  # TensorFlow's thread pools can keep a finished process alive at exit
    if "--xla" in argv:
        argv = [arg for arg in argv if arg != "--xla"]
        os.environ[XLA_ENV] = "1"
    return cli(KerasSuite(xla=os.environ.get(XLA_ENV) == "1"), argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
