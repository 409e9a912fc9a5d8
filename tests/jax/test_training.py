"""Training with flax NNX + optax (the shipped example), and the loss sharded over two host devices."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jax_flax_training.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("jax_flax_training", EXAMPLE)
    assert spec is not None, EXAMPLE
    assert spec.loader is not None, EXAMPLE
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flax_nnx_example_trains_with_poly1_inside_nnx_jit() -> None:
    """The example's nnx.jit train step (loss, gradients, optax update) learns the generated task."""
    example = _load_example()
    result = example.train(epsilon=1.0, steps=300, seed=0)
    assert result["final_loss"] < 0.4 * result["first_loss"], result
    # 5% of the labels are flipped at random, so about 95.5% is the ceiling.
    assert result["train_accuracy"] > 0.9, result
    assert result["test_accuracy"] > 0.9, result


_SHARDED_SCRIPT = """
import json

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from polyloss_core import PolySpec
from polyloss_jax import poly1_cross_entropy, poly1_cross_entropy_with_integer_labels, poly_loss

rng = np.random.default_rng(0)
logits = rng.normal(scale=2.0, size=(16, 10)).astype(np.float32)
labels = rng.integers(0, 10, size=16).astype(np.int32)
soft = (0.9 * np.eye(10)[labels] + 0.01).astype(np.float32)
focal = PolySpec.poly1_focal(1.0, 0.5, 0.25)


def step(z, y, q):
    loss, grad = jax.value_and_grad(lambda z: poly1_cross_entropy_with_integer_labels(z, y, epsilon=2.0).mean())(z)
    return {
        "loss": loss,
        "grad": grad,
        "integer": poly1_cross_entropy_with_integer_labels(z, y),
        "dense": poly1_cross_entropy(z, q),
        "sigmoid": poly_loss(z, q, focal, family="sigmoid"),
    }


mesh = jax.make_mesh((2,), ("data",))
batch = NamedSharding(mesh, PartitionSpec("data"))
one = jax.devices()[0]
single = jax.jit(step)(*(jax.device_put(a, one) for a in (logits, labels, soft)))
sharded = jax.jit(step)(*(jax.device_put(a, batch) for a in (logits, labels, soft)))
print(json.dumps({
    "device_count": jax.device_count(),
    "per_example_devices": len(sharded["integer"].sharding.device_set),
    "shard_shapes": [list(s.data.shape) for s in sharded["integer"].addressable_shards],
    "single": {k: np.asarray(v).tolist() for k, v in single.items()},
    "sharded": {k: np.asarray(v).tolist() for k, v in sharded.items()},
}))
"""


def test_loss_sharded_over_two_host_devices_equals_one_device() -> None:
    env = dict(os.environ)
    # Two CPU devices must be requested before JAX initialises, hence a fresh interpreter.
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["device_count"] == 2
    assert report["per_example_devices"] == 2
    assert report["shard_shapes"] == [[8], [8]]
    for key, want in report["single"].items():
        np.testing.assert_allclose(report["sharded"][key], want, rtol=1e-6, atol=1e-7, err_msg=key)
