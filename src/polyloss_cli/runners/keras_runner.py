"""The demo's training loop in Keras 3, with the loss from :mod:`polyloss_tf`.

It uses ``Model.train_on_batch`` so it runs on whichever Keras backend is
configured (``KERAS_BACKEND``; TensorFlow by default).
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

import polyloss_tf
from polyloss_core import PolySpec

from ..data import Problem, RunResult
from . import EpochCallback, epochs

__all__ = ["train"]


def train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the MLP with ``keras.optimizers.SGD`` and ``polyloss_tf.PolyLoss(from_logits=True)``; see ``epochs``."""
    start = time.perf_counter()
    w1, b1, w2, b2 = problem.weights
    model = keras.Sequential(
        [
            keras.Input(shape=(w1.shape[0],), dtype="float32"),
            keras.layers.Dense(w1.shape[1], activation="relu"),
            keras.layers.Dense(w2.shape[1]),
        ]
    )
    model.set_weights([w1, b1, w2, b2])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=problem.learning_rate),
        loss=polyloss_tf.PolyLoss(spec, from_logits=True),
        jit_compile=False,
    )

    def step(index: np.ndarray) -> Any:
        return model.train_on_batch(problem.x_train[index], problem.y_train[index])

    return epochs(problem, step, lambda x: keras.ops.convert_to_numpy(model(x, training=False)), on_epoch, start)
