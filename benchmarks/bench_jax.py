"""polyloss_jax against optax's own losses, on CPU.

Usage::

    python benchmarks/bench_jax.py [--quick | --dry-run] [--only TEXT] [--json PATH]

What is timed: one ``jax.jit(jax.value_and_grad(mean loss))`` call with respect
to the logits, then ``block_until_ready``; every step is compiled and warmed up
before the interleaved rounds of ``benchmarks/harness.py``. XLA runs on one
CPU: XLA's CPU client sizes its thread pool from the CPUs the process may
use and no longer honours ``XLA_FLAGS``' thread settings, so the script pins
itself to one CPU before importing jax (``harness.pin_to_one_cpu``); the clock
is the process' CPU time, which includes XLA's worker threads.

For every shape and variant of ``benchmarks/cases.py`` (classes on the last
axis, optax's convention):

* native: ``optax.losses.softmax_cross_entropy_with_integer_labels`` for
  integer labels, ``optax.losses.softmax_cross_entropy`` for probabilities;
  with label smoothing, ``softmax_cross_entropy`` of
  ``optax.smooth_labels(one_hot(labels))``, built inside the step from the same
  integer labels ours receives; ``optax.losses.sigmoid_binary_cross_entropy``
  for the sigmoid variant.
* ours: ``poly1_cross_entropy_with_integer_labels``, ``poly1_cross_entropy``,
  ``poly_loss`` with a ``PolySpec``, ``poly1_sigmoid_focal_loss``.
* peers: ``optax.losses.poly_loss_cross_entropy`` (for integer labels it needs
  one-hot labels, built once outside the step, so it is charged nothing for
  them) and ``optax.losses.sigmoid_focal_loss``.

``mem_ratio`` compares XLA's accounting of each compiled step (argument +
output + temporary bytes, less aliased ones, from
``Compiled.memory_analysis()``). It is known at compile time, so one fresh
subprocess measures a whole group. Process RSS was tried and rejected: the
allocator's caching made it vary 2-3x between identical runs.

``run(quick)`` returns one dict per (contender, shape, variant) with at least
``framework``, ``case``, ``shape``, ``ours_s``, ``native_s``, ``ratio`` and
``mem_ratio``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from harness import cpus_for, ensure_src_importable

if __name__ == "__main__":
    cpus_for(sys.argv)  # before jax starts its threads, which inherit the CPUs allowed now

from cases import ALPHA, EPSILON, GAMMA, SMOOTHING, SPEC_LABELS, Shape, Variant, make_inputs, spec_for
from matrix import Contender, Group, Suite, cli

ensure_src_importable()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from polyloss_jax import (  # noqa: E402
    PolySpec,
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
    poly_loss,
)

Loss = Callable[[jax.Array, jax.Array], jax.Array]


class Step:
    """A jitted ``value_and_grad`` of the mean loss, bound to its inputs; calling it waits for the result."""

    def __init__(self, loss: Loss, logits: jax.Array, labels: jax.Array) -> None:
        self.compiled = jax.jit(jax.value_and_grad(lambda z, y: jnp.mean(loss(z, y))))
        self.args = (logits, labels)

    def __call__(self) -> None:
        jax.block_until_ready(self.compiled(*self.args))

    def memory_bytes(self) -> int:
        stats = self.compiled.lower(*self.args).compile().memory_analysis()
        used = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
        return int(used - stats.alias_size_in_bytes)


def _smoothed_native(z: jax.Array, y: jax.Array) -> jax.Array:
    targets = optax.smooth_labels(jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype), SMOOTHING)
    return optax.losses.softmax_cross_entropy(z, targets)


class JaxSuite(Suite):
    def __init__(self) -> None:
        super().__init__("jax", __file__, memory_per_group=True, channels_last=True)

    def setup(self) -> None:
        pass  # one XLA thread comes from XLA_FLAGS; inputs come from seeded NumPy

    def versions(self) -> dict[str, str]:
        return {"jax": jax.__version__, "optax": optax.__version__}

    def group(self, shape: Shape, variant: Variant) -> Group:
        arrays = make_inputs(shape, variant, channels_last=True)
        logits = jnp.asarray(arrays["logits"])
        labels = {
            kind: jnp.asarray(array, jnp.int32 if kind == "index" else jnp.float32)
            for kind, array in arrays.items()
            if kind != "logits"
        }
        group = Group(lambda loss, kind: Step(loss, logits, labels[kind]))
        add = group.add

        key = variant.key
        integer_ce = optax.losses.softmax_cross_entropy_with_integer_labels
        if key in ("poly1-int", "poly3-int", "poly1-focal-softmax"):
            add("native", "optax softmax_cross_entropy_with_integer_labels", "native", integer_ce, "index", "ce:index")
        if key == "poly1-int":
            add("ours", "poly1_cross_entropy_with_integer_labels", "ours",
                lambda z, y: poly1_cross_entropy_with_integer_labels(z, y, epsilon=EPSILON), "index")  # fmt: skip
            labels["one-hot"] = jax.nn.one_hot(labels["index"], shape.num_classes, dtype=jnp.float32)
            add("peer-optax", "optax poly_loss_cross_entropy (one-hot labels)", "peer",
                lambda z, q: optax.losses.poly_loss_cross_entropy(z, q, epsilon=EPSILON), "one-hot")  # fmt: skip
        elif key in ("poly1-onehot", "poly1-soft"):
            add("native", "optax softmax_cross_entropy", "native", optax.losses.softmax_cross_entropy, variant.labels)
            add("ours", "poly1_cross_entropy", "ours",
                lambda z, q: poly1_cross_entropy(z, q, epsilon=EPSILON), variant.labels)  # fmt: skip
            add("peer-optax", "optax poly_loss_cross_entropy", "peer",
                lambda z, q: optax.losses.poly_loss_cross_entropy(z, q, epsilon=EPSILON), variant.labels)  # fmt: skip
        elif key == "poly1-smooth":
            add("native", "optax softmax_cross_entropy(smooth_labels(one_hot))", "native", _smoothed_native, "index")
            spec = PolySpec.poly1(EPSILON, label_smoothing=SMOOTHING)
            add(
                "ours",
                "poly_loss(PolySpec.poly1(label_smoothing))",
                "ours",
                lambda z, y: poly_loss(z, y, spec),
                "index",
            )
        elif key in SPEC_LABELS:
            spec = spec_for(key)
            add("ours", SPEC_LABELS[key], "ours", lambda z, y: poly_loss(z, y, spec), "index")
        elif key == "poly1-focal-sigmoid":
            add("native", "optax sigmoid_binary_cross_entropy", "native",
                optax.losses.sigmoid_binary_cross_entropy, "binary")  # fmt: skip
            add("ours", "poly1_sigmoid_focal_loss", "ours",
                lambda z, t: poly1_sigmoid_focal_loss(z, t, epsilon=EPSILON, alpha=ALPHA, gamma=GAMMA), "binary")  # fmt: skip
            add("peer-optax", "optax sigmoid_focal_loss", "peer",
                lambda z, t: optax.losses.sigmoid_focal_loss(z, t, alpha=ALPHA, gamma=GAMMA), "binary")  # fmt: skip
        else:
            raise ValueError(f"unknown variant {key!r}")
        return group

    def peak_bytes(self, shape: Shape, variant: Variant, contender: Contender) -> int:
        step = contender.step
        if not isinstance(step, Step):
            raise TypeError(f"expected a bench_jax.Step, got {type(step).__name__}")
        return step.memory_bytes()


def run(quick: bool = False, dry: bool = False) -> list[dict[str, Any]]:
    """Benchmark rows (``quick``: a smoke run; ``dry``: tiny shapes, every loss once, no timing)."""
    return JaxSuite().run(quick, dry)


if __name__ == "__main__":
    raise SystemExit(cli(JaxSuite()))
