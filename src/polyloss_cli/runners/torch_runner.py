"""The demo's training loop in PyTorch, with the loss from :mod:`polyloss_torch`."""

from __future__ import annotations

import time

import numpy as np
import torch

import polyloss_torch
from polyloss_core import PolySpec

from ..data import Problem, RunResult
from . import EpochCallback, epochs

__all__ = ["train"]


def train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the MLP with ``torch.optim.SGD`` and ``polyloss_torch.poly_loss``; see ``epochs``."""
    # The model is tiny: one intra-op thread is fastest and avoids contention. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(spec, problem, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None) -> RunResult:
    start = time.perf_counter()
    w1, b1, w2, b2 = problem.weights
    hidden = torch.nn.Linear(w1.shape[0], w1.shape[1])
    output = torch.nn.Linear(w2.shape[0], w2.shape[1])
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(np.ascontiguousarray(w1.T)))
        hidden.bias.copy_(torch.from_numpy(b1))
        output.weight.copy_(torch.from_numpy(np.ascontiguousarray(w2.T)))
        output.bias.copy_(torch.from_numpy(b2))
    model = torch.nn.Sequential(hidden, torch.nn.ReLU(), output)
    optimizer = torch.optim.SGD(model.parameters(), lr=problem.learning_rate)
    x_train = torch.from_numpy(problem.x_train)
    y_train = torch.from_numpy(problem.y_train)

    def step(index: np.ndarray) -> float:
        model.train()
        rows = torch.from_numpy(index)
        loss = polyloss_torch.poly_loss(model(x_train[rows]), y_train[rows], spec, reduction="mean")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        return model(torch.from_numpy(x)).double().numpy()

    return epochs(problem, step, predict, on_epoch, start)
