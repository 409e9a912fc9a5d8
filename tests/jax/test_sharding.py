"""Vocabulary-sharded logits on two host devices: the unsharded numbers, and never the full logits on one device.

A language model's output layer is often split over the vocabulary (tensor parallelism):
each device holds the logits of its own classes. The softmax losses then need only
per-token reductions across devices (an all-reduce of ``(tokens,)`` vectors); this file
checks that the compiled program of the loss and its gradient does exactly that and never
all-gathers the ``(tokens, vocab)`` logits.

Two host devices must be requested before JAX initialises, so each check runs in a fresh
interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import json, re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from polyloss_core import PolySpec
from polyloss_jax import (
    linear_poly1_cross_entropy_with_integer_labels,
    poly1_cross_entropy_with_integer_labels,
    poly_loss,
)

N, V, D = 16, 64, 8
rng = np.random.default_rng(0)
logits = rng.normal(scale=2.0, size=(N, V)).astype(np.float32)
labels = rng.integers(0, V, size=N).astype(np.int32)
keep = rng.random(N) > 0.25
weights = rng.normal(size=N).astype(np.float32)  # a non-uniform cotangent per token
mesh = jax.make_mesh((2,), ("model",), axis_types=(AxisType.Auto,))
one = jax.devices()[0]


def full_gathers(hlo, shape):
    # Every all-gather (sync or async) whose result holds an array of the given full shape.
    full = "[" + ",".join(str(s) for s in shape) + "]"
    found = []
    for line in hlo.splitlines():
        op = re.search(r"=\\s*(.*?)\\s+all-gather(?:-start)?\\(", line)
        if op and full in op.group(1):
            found.append(line.strip()[:200])
    return found


def collectives(hlo):
    return sorted({m for m in re.findall(r"\\b(all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)", hlo)})
"""

_LOGITS_SCRIPT = (
    _PRELUDE
    + """
losses = {
    "poly1_integer": lambda z, y, m: poly1_cross_entropy_with_integer_labels(z, y, epsilon=2.0),
    "poly1_integer_where": lambda z, y, m: poly1_cross_entropy_with_integer_labels(z, y, where=m),
    "poly_loss_poly1_focal": lambda z, y, m: poly_loss(z, y, PolySpec.poly1_focal(1.0, 2.0)),
    "poly_loss_poly3": lambda z, y, m: poly_loss(z, y, PolySpec.poly_n(1.0, 0.5, 0.25)),
    "poly_loss_smoothed_ce": lambda z, y, m: poly_loss(z, y, PolySpec(label_smoothing=0.1)),
    # A control the checker must flag: the logits explicitly replicated before an optax loss.
    "control_gathered": lambda z, y, m: __import__("optax").losses.softmax_cross_entropy_with_integer_labels(
        jax.lax.with_sharding_constraint(z, NamedSharding(mesh, P())), y
    ),
}
import contextlib

out = {}
for kind, axis_type in (("auto", AxisType.Auto), ("explicit", AxisType.Explicit)):
  # Explicit axes (jax.make_mesh's default) carry the sharding in the arrays' types.
  mesh = jax.make_mesh((2,), ("model",), axis_types=(axis_type,))
  for name, fn in losses.items():
    if kind == "explicit" and name.startswith("control"):
        continue
    program = jax.jit(jax.value_and_grad(lambda z, y, m, w: (fn(z, y, m) * w).sum()))
    sharded_args = (
        jax.device_put(logits, NamedSharding(mesh, P(None, "model"))),
        *(jax.device_put(a, NamedSharding(mesh, P())) for a in (labels, keep, weights)),
    )
    with jax.set_mesh(mesh) if kind == "explicit" else contextlib.nullcontext():
        hlo = program.lower(*sharded_args).compile().as_text()
        value, grad = program(*sharded_args)
    # The reference: the same program with every array on one device (the control pins two devices).
    reference = sharded_args if name.startswith("control") else (jax.device_put(a, one) for a in (logits, labels, keep, weights))
    want_value, want_grad = program(*reference)
    out[f"{kind}:{name}"] = {
        "value": float(value),
        "want_value": float(want_value),
        "grad": np.asarray(grad).tolist(),
        "want_grad": np.asarray(want_grad).tolist(),
        "grad_spec": list(grad.sharding.spec),
        "full_gathers": full_gathers(hlo, (N, V)),
        "collectives": collectives(hlo),
    }
print(json.dumps({"devices": jax.device_count(), "losses": out}))
"""
)


def _run(script: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    return report


@pytest.fixture(scope="module")
def logits_report() -> dict:
    return _run(_LOGITS_SCRIPT)["losses"]


_SHARDED = [
    f"{kind}:{name}"
    for kind in ("auto", "explicit")
    for name in (
        "poly1_integer",
        "poly1_integer_where",
        "poly_loss_poly1_focal",
        "poly_loss_poly3",
        "poly_loss_smoothed_ce",
    )
]


@pytest.mark.parametrize("name", _SHARDED)
def test_vocab_sharded_logits_give_the_unsharded_value_and_gradient(logits_report, name) -> None:
    case = logits_report[name]
    np.testing.assert_allclose(case["value"], case["want_value"], rtol=1e-6)
    np.testing.assert_allclose(case["grad"], case["want_grad"], rtol=1e-5, atol=1e-7)
    # The gradient stays split over the vocabulary like the logits.
    assert case["grad_spec"] == [None, "model"], case["grad_spec"]


@pytest.mark.parametrize("name", _SHARDED)
def test_vocab_sharded_logits_are_never_all_gathered(logits_report, name) -> None:
    case = logits_report[name]
    assert case["full_gathers"] == [], case["full_gathers"]
    # Only per-token reductions cross devices.
    assert case["collectives"] == ["all-reduce"], case["collectives"]


def test_the_all_gather_check_flags_gathered_logits(logits_report) -> None:
    """The HLO check is not vacuous: replicating the logits shows up as a full (tokens, vocab) all-gather."""
    control = logits_report["auto:control_gathered"]
    assert control["full_gathers"], control["collectives"]


_LINEAR_SCRIPT = (
    _PRELUDE
    + """
from jax import shard_map

import polyloss_jax.linear as linear

linear.VOCAB_BLOCK = 8  # several vocabulary tiles per device
hidden = rng.normal(size=(N, D)).astype(np.float32)
weight = rng.normal(size=(V, D)).astype(np.float32)
specs = {"poly1": PolySpec.poly1(2.0), "smoothed_poly1": PolySpec.poly1(1.0, label_smoothing=0.1),
         "poly1_focal": PolySpec.poly1_focal(1.0, 2.0)}
out = {}
for name, spec in specs.items():
    def reference(h, w, spec=spec):
        return (poly_loss(h @ w.T, labels, spec, where=keep) * weights).sum()

    def tensor_parallel(h, w, spec=spec):
        # weight split by vocabulary rows over "model"; hidden, labels and mask on every device.
        per_token = shard_map(
            lambda h, w, y, m: linear.linear_poly_loss(h, w, y, spec, where=m, chunk_size=4, vocab_axis="model"),
            mesh=mesh, in_specs=(P(), P("model"), P(), P()), out_specs=P(),
        )(h, w, labels, keep)
        return (per_token * weights).sum()

    def data_parallel(h, w, spec=spec):
        # tokens split over "model", weight replicated: the weight gradient is summed over devices.
        per_token = shard_map(
            lambda h, w, y, m: linear.linear_poly_loss(h, w, y, spec, where=m, chunk_size=4),
            mesh=mesh, in_specs=(P("model"), P(), P("model"), P("model")), out_specs=P("model"),
        )(h, w, labels, keep)
        return (per_token * weights).sum()

    want_value, (want_dh, want_dw) = jax.jit(jax.value_and_grad(reference, (0, 1)))(hidden, weight)
    placements = {
        "tensor_parallel": (tensor_parallel, P(), P("model", None)),
        "data_parallel": (data_parallel, P("model", None), P()),
    }
    for mode, (fn, h_spec, w_spec) in placements.items():
        program = jax.jit(jax.value_and_grad(fn, (0, 1)))
        args = (jax.device_put(hidden, NamedSharding(mesh, h_spec)), jax.device_put(weight, NamedSharding(mesh, w_spec)))
        hlo = program.lower(*args).compile().as_text()
        value, (dh, dw) = program(*args)
        out[f"{name}-{mode}"] = {
            "value": float(value), "want_value": float(want_value),
            "dh": np.asarray(dh).tolist(), "want_dh": np.asarray(want_dh).tolist(),
            "dw": np.asarray(dw).tolist(), "want_dw": np.asarray(want_dw).tolist(),
            "dw_spec": list(dw.sharding.spec),
            "gathers": full_gathers(hlo, (N, V)) + full_gathers(hlo, (V, D)),
            "collectives": collectives(hlo),
        }
print(json.dumps({"devices": jax.device_count(), "losses": out}))
"""
)

_LINEAR_CASES = [
    f"{s}-{m}" for s in ("poly1", "smoothed_poly1", "poly1_focal") for m in ("tensor_parallel", "data_parallel")
]


@pytest.fixture(scope="module")
def linear_report() -> dict:
    return _run(_LINEAR_SCRIPT)["losses"]


@pytest.mark.parametrize("name", _LINEAR_CASES)
def test_fused_linear_loss_inside_shard_map_equals_the_unfused_loss(linear_report, name) -> None:
    case = linear_report[name]
    np.testing.assert_allclose(case["value"], case["want_value"], rtol=1e-5)
    np.testing.assert_allclose(case["dh"], case["want_dh"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(case["dw"], case["want_dw"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [c for c in _LINEAR_CASES if c.endswith("tensor_parallel")])
def test_vocab_parallel_fused_loss_gathers_neither_weight_nor_logits(linear_report, name) -> None:
    case = linear_report[name]
    assert case["gathers"] == [], case["gathers"]
    assert case["collectives"] == ["all-reduce"], case["collectives"]
    # Each device keeps the gradient of its own vocabulary block.
    assert case["dw_spec"][0] == "model", case["dw_spec"]
