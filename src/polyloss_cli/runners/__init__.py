"""One training loop per framework, each loaded only when its backend is asked for.

Every runner trains the same one-hidden-layer ReLU MLP with plain minibatch SGD
(``w <- w - lr * grad``, no momentum, no weight decay) on the batches of a
:class:`~polyloss_cli.data.Problem`, computing the loss with this project's
adapter for that framework.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from polyloss_core import PolySpec

from ..data import Problem, RunResult

__all__ = ["BACKENDS", "BackendInfo", "EpochCallback", "available", "run"]

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
