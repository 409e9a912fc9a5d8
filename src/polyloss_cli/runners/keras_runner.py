"""The demo's training loop in Keras 3, with the loss from :mod:`polyloss_tf`.

It uses ``Model.train_on_batch`` so it runs on whichever Keras backend is
configured (``KERAS_BACKEND``; TensorFlow by default).
"""

from __future__ import annotations

import time

import keras
import numpy as np

import polyloss_tf
from polyloss_core import PolySpec

from ..data import Problem, RunResult
from ..metrics import balanced_accuracy
from . import EpochCallback

__all__ = ["train"]


def train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the MLP with ``keras.optimizers.SGD`` and ``polyloss_tf.PolyLoss(from_logits=True)``.

    Args:
        spec: the loss.
        problem: data, initial weights and batch order.
        on_epoch: optional callback ``(epoch, train_loss)`` after every epoch.

    Returns:
        Per-epoch training loss and test balanced accuracy, final test and validation logits, wall time.
    """
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

    result = RunResult()
    for epoch, batches in enumerate(problem.batches):
        total = 0.0
        for index in batches:
            loss = model.train_on_batch(problem.x_train[index], problem.y_train[index])
            total += float(np.asarray(loss)) * len(index)
        logits = np.asarray(keras.ops.convert_to_numpy(model(problem.x_test, training=False)), dtype=np.float64)
        result.train_loss.append(total / len(problem.y_train))
        result.test_balanced_accuracy.append(balanced_accuracy(logits, problem.y_test))
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1])
    result.test_logits = logits
    result.val_logits = np.asarray(keras.ops.convert_to_numpy(model(problem.x_val, training=False)), dtype=np.float64)
    result.seconds = time.perf_counter() - start
    return result
