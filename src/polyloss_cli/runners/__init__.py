"""One training loop per framework, each loaded only when its backend is asked for.

Every runner trains the same one-hidden-layer ReLU MLP with plain minibatch SGD
(``w <- w - lr * grad``, no momentum, no weight decay) on the batches of a
:class:`~polyloss_cli.data.Problem`, computing the loss with this project's
adapter for that framework.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyloss_core import PolySpec

from ..data import Problem, RunResult
from ..metrics import balanced_accuracy

__all__ = ["BACKENDS", "BackendInfo", "EpochCallback", "available", "epochs", "run"]

#: Called after every epoch with ``(epoch_index, train_loss)``.
EpochCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class BackendInfo:
    """A demo backend: its CLI name, label, the framework it needs and its runner module."""

    name: str
    label: str
    requires: tuple[str, ...]
    module: str
    extra: str


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo("torch", "torch", ("torch",), "polyloss_cli.runners.torch_runner", "torch"),
    "jax": BackendInfo("jax", "jax", ("jax", "optax"), "polyloss_cli.runners.jax_runner", "jax"),
    "tf": BackendInfo("tf", "keras", ("keras",), "polyloss_cli.runners.keras_runner", "tf"),
}


def available(name: str) -> bool:
    """Whether the frameworks that backend ``name`` needs are installed (without importing them).

    Args:
        name: a key of :data:`BACKENDS`.

    Returns:
        True when every required top-level package can be found.
    """
    from ..__main__ import installed

    return all(installed(package) for package in BACKENDS[name].requires)


_WARMED_UP: set[str] = set()


def run(name: str, spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the demo MLP with backend ``name`` and loss ``spec``.

    The first call for a backend first trains one untimed minibatch, so one-time
    framework start-up costs (lazy imports, thread pools, kernel caches) do not
    land in the first run's reported time.

    Args:
        name: a key of :data:`BACKENDS`.
        spec: the loss.
        problem: data, initial weights and batch order.
        on_epoch: optional callback after every epoch.

    Returns:
        The :class:`~polyloss_cli.data.RunResult`.
    """
    module = importlib.import_module(BACKENDS[name].module)
    if name not in _WARMED_UP:
        module.train(PolySpec.cross_entropy(), dataclasses.replace(problem, batches=[problem.batches[0][:1]]))
        _WARMED_UP.add(name)
    result: RunResult = module.train(spec, problem, on_epoch)
    return result


def epochs(
    problem: Problem,
    step: Callable[[np.ndarray], Any],
    predict: Callable[[np.ndarray], Any],
    on_epoch: EpochCallback | None,
    start: float,
) -> RunResult:
    """The loop every runner shares: its ``step`` on each minibatch, then test metrics after each epoch.

    Args:
        problem: data and batch order.
        step: one SGD step on the training rows ``index``; returns the batch's mean loss.
        predict: logits for an input matrix (any array NumPy converts).
        on_epoch: optional callback ``(epoch, train_loss)`` after every epoch.
        start: ``time.perf_counter()`` when the runner began (model set-up is timed too).

    Returns:
        Per-epoch training loss and test balanced accuracy, final test and validation logits, wall time.
    """
    result = RunResult()
    for epoch, batches in enumerate(problem.batches):
        total = sum(float(np.asarray(step(index))) * len(index) for index in batches)
        logits = np.asarray(predict(problem.x_test), dtype=np.float64)
        result.train_loss.append(total / len(problem.y_train))
        result.test_balanced_accuracy.append(balanced_accuracy(logits, problem.y_test))
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1])
    result.test_logits = logits
    result.val_logits = np.asarray(predict(problem.x_val), dtype=np.float64)
    result.seconds = time.perf_counter() - start
    return result
