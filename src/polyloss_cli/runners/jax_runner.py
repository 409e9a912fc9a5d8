"""The demo's training loop in JAX with optax, with the loss from :mod:`polyloss_jax`."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import polyloss_jax
from polyloss_core import PolySpec

from ..data import Problem, RunResult
from . import EpochCallback, epochs

__all__ = ["train"]


def _forward(params: dict[str, Any], x: Any) -> Any:
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the MLP with ``optax.sgd`` and ``polyloss_jax.poly_loss`` (mean over the batch); see ``epochs``."""
    start = time.perf_counter()
    w1, b1, w2, b2 = problem.weights
    params = {"w1": jnp.asarray(w1), "b1": jnp.asarray(b1), "w2": jnp.asarray(w2), "b2": jnp.asarray(b2)}
    optimizer = optax.sgd(problem.learning_rate)
    state = optimizer.init(params)

    def objective(p: dict[str, Any], x: Any, y: Any) -> Any:
        return jnp.mean(polyloss_jax.poly_loss(_forward(p, x), y, spec))

    @jax.jit
    def update(p: dict[str, Any], s: Any, x: Any, y: Any) -> tuple[dict[str, Any], Any, Any]:
        loss, grads = jax.value_and_grad(objective)(p, x, y)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    predict = jax.jit(_forward)
    x_train = jnp.asarray(problem.x_train)
    y_train = jnp.asarray(problem.y_train.astype(np.int32))

    def step(index: np.ndarray) -> Any:
        nonlocal params, state
        rows = jnp.asarray(index.astype(np.int32))
        params, state, loss = update(params, state, x_train[rows], y_train[rows])
        return loss

    return epochs(problem, step, lambda x: predict(params, jnp.asarray(x)), on_epoch, start)
