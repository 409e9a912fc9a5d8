"""polyloss_tf imports no framework that Keras itself has not (checked in a fresh interpreter).

Keras imports its backend, and JAX too whenever JAX is installed; the losses must add
nothing to that, and TensorFlow in particular only on the TensorFlow backend. The
``tests(keras-jax)`` and ``tests(keras-torch)`` nox sessions install Keras without
TensorFlow, so there the whole Keras suite also proves TensorFlow is not needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import BACKEND

ROOT = Path(__file__).resolve().parents[2]
# Keras backend name -> the top-level module it runs on.
BACKEND_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}

CODE = """
import json, sys
import numpy as np
import keras

FRAMEWORKS = {"tensorflow", "jax", "torch"}
keras.losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0, 1]), np.zeros((2, 3), "float32"))
by_keras = sorted({m.split(".")[0] for m in sys.modules} & FRAMEWORKS)

import polyloss_tf as pl
from polyloss_core import PolySpec

rng = np.random.default_rng(0)
z = rng.normal(size=(6, 4)).astype("float32")
y = np.array([0, 1, 2, 3, 0, 1])
q = np.eye(4, dtype="float32")[y]
losses = [
    pl.Poly1SparseCategoricalCrossentropy(from_logits=True)(y, z),
    pl.Poly1CategoricalCrossentropy(from_logits=True)(q, z),
    pl.Poly1CategoricalFocalCrossentropy(from_logits=True)(q, z),
    pl.Poly1BinaryCrossentropy(from_logits=True)(q, z),
    pl.PolyLoss(PolySpec.poly_n(1.0, 0.5), from_logits=True)(y, z),
]
assert all(np.isfinite(float(value)) for value in losses)
print(json.dumps([by_keras, sorted({m.split(".")[0] for m in sys.modules} & FRAMEWORKS)]))
"""


def test_no_framework_beyond_what_keras_loads() -> None:
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=300, env=env)
    by_keras, with_losses = json.loads(out.stdout.strip().splitlines()[-1])
    assert with_losses == by_keras
    assert BACKEND_MODULE[BACKEND] in with_losses
    if BACKEND != "tensorflow":
        assert "tensorflow" not in with_losses
