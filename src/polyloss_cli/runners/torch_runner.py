"""The demo's training loop in PyTorch, with the loss from :mod:`polyloss_torch`."""

from __future__ import annotations

import time

import numpy as np
import torch

import polyloss_torch
from polyloss_core import PolySpec

from ..data import Problem, RunResult
from ..metrics import balanced_accuracy
from . import EpochCallback

__all__ = ["train"]


def train(spec: PolySpec, problem: Problem, on_epoch: EpochCallback | None = None) -> RunResult:
    """Train the MLP with ``torch.optim.SGD`` and ``polyloss_torch.poly_loss``.

    Args:
        spec: the loss.
        problem: data, initial weights and batch order.
        on_epoch: optional callback ``(epoch, train_loss)`` after every epoch.

    Returns:
        Per-epoch training loss and test balanced accuracy, final test and validation logits, wall time.
    """
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
    x_test = torch.from_numpy(problem.x_test)

    result = RunResult()
    for epoch, batches in enumerate(problem.batches):
        model.train()
        total = 0.0
        for index in batches:
            rows = torch.from_numpy(index)
            loss = polyloss_torch.poly_loss(model(x_train[rows]), y_train[rows], spec, reduction="mean")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        model.eval()
        with torch.no_grad():
            logits = model(x_test).double().numpy()
        result.train_loss.append(total / len(problem.y_train))
        result.test_balanced_accuracy.append(balanced_accuracy(logits, problem.y_test))
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1])
    result.test_logits = logits
    with torch.no_grad():
        result.val_logits = model(torch.from_numpy(problem.x_val)).double().numpy()
    result.seconds = time.perf_counter() - start
    return result
