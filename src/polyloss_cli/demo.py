"""The ``polyloss demo`` experiment: losses to compare, the runs, metrics, parity and outputs.

No framework is imported here; :mod:`polyloss_cli.runners` loads the requested
ones on demand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyloss_core import PolySpec

from . import metrics
from .data import Problem, RunResult
from .runners import BACKENDS, run

__all__ = [
    "NamedLoss",
    "ParityRow",
    "Run",
    "demo_losses",
    "parity",
    "run_all",
    "save_learning_curves",
    "save_results",
    "summary",
    "tail_classes",
]

#: Called with ``(backend, loss name, epoch, train loss)`` after every epoch.
ProgressCallback = Callable[[str, str, int, float], None]


@dataclass(frozen=True)
class NamedLoss:
    """A loss of the comparison: a short name and its spec."""

    name: str
    spec: PolySpec


@dataclass(frozen=True)
class Run:
    """One finished training run."""

    backend: str
    loss: NamedLoss
    result: RunResult


@dataclass(frozen=True)
class ParityRow:
    """How far one backend's per-epoch training loss is from the reference backend's.

    Attributes:
        loss: the loss name.
        reference: the reference backend (the first one trained).
        backend: the compared backend.
        max_abs: ``max_epoch |L_backend - L_reference|``.
        max_rel: ``max_epoch |L_backend - L_reference| / |L_reference|``.
    """

    loss: str
    reference: str
    backend: str
    max_abs: float
    max_rel: float


def demo_losses(epsilons: Sequence[float], gamma: float, focal_epsilon: float) -> list[NamedLoss]:
    """The compared losses: CE, focal, Poly-1 per epsilon, and Poly-1 focal.

    Args:
        epsilons: Poly-1 epsilons, one run each.
        gamma: focal exponent of the focal and Poly-1 focal runs.
        focal_epsilon: epsilon of the Poly-1 focal run.

    Returns:
        The losses in table order.

    Raises:
        ValueError: a value that gives an invalid :class:`PolySpec` (its message).
    """
    losses = [NamedLoss("CE", PolySpec.cross_entropy()), NamedLoss(f"focal g={gamma:g}", PolySpec.focal(gamma))]
    losses += [NamedLoss(f"poly1 e={eps:g}", PolySpec.poly1(eps)) for eps in epsilons]
    losses.append(NamedLoss(f"poly1-focal e={focal_epsilon:g} g={gamma:g}", PolySpec.poly1_focal(focal_epsilon, gamma)))
    return losses


def run_all(
    backends: Sequence[str],
    losses: Sequence[NamedLoss],
    problem: Problem,
    on_epoch: ProgressCallback | None = None,
    on_start: Callable[[str, str], None] | None = None,
) -> list[Run]:
    """Train every loss with every backend on the same problem.

    Args:
        backends: keys of :data:`polyloss_cli.runners.BACKENDS`, in order.
        losses: the losses to compare.
        problem: data, initial weights and batch order shared by all runs.
        on_epoch: optional callback ``(backend, loss, epoch, train_loss)``.
        on_start: optional callback ``(backend, loss)`` before each run.

    Returns:
        One :class:`Run` per (backend, loss), backend-major.
    """
    runs = []
    for backend in backends:
        for loss in losses:
            if on_start is not None:
                on_start(backend, loss.name)

            def report(epoch: int, value: float, backend: str = backend, name: str = loss.name) -> None:
                if on_epoch is not None:
                    on_epoch(backend, name, epoch, value)

            runs.append(Run(backend, loss, run(backend, loss.spec, problem, report)))
    return runs


def tail_classes(problem: Problem) -> np.ndarray:
    """The rarer half of the classes in the training split.

    Args:
        problem: the demo problem.

    Returns:
        Class indices sorted from rarest.
    """
    counts = np.bincount(problem.y_train, minlength=problem.num_classes)
    return np.argsort(counts, kind="stable")[: problem.num_classes // 2]


def summary(run: Run, problem: Problem) -> dict[str, float]:
    """Test-set metrics of one run.

    Args:
        run: the finished run.
        problem: the demo problem (for the test labels and the tail classes).

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``tail_accuracy``, ``nll``, ``ece``,
        ``final_train_loss`` and ``seconds``.
    """
    logits, labels = run.result.test_logits, problem.y_test
    return {
        "accuracy": metrics.accuracy(logits, labels),
        "balanced_accuracy": metrics.balanced_accuracy(logits, labels),
        "tail_accuracy": metrics.tail_accuracy(logits, labels, tail_classes(problem)),
        "nll": metrics.nll(logits, labels),
        "ece": metrics.expected_calibration_error(logits, labels),
        "final_train_loss": run.result.train_loss[-1],
        "seconds": run.result.seconds,
    }


def parity(runs: Sequence[Run]) -> list[ParityRow]:
    """Compare each backend's training-loss curve with the first backend's, loss by loss.

    Args:
        runs: the finished runs (several backends on the same losses).

    Returns:
        One row per (loss, non-reference backend); empty with a single backend.
    """
    backends = list(dict.fromkeys(r.backend for r in runs))
    if len(backends) < 2:
        return []
    by_key = {(r.backend, r.loss.name): np.asarray(r.result.train_loss, dtype=np.float64) for r in runs}
    rows = []
    for name in dict.fromkeys(r.loss.name for r in runs):
        reference = by_key[(backends[0], name)]
        for backend in backends[1:]:
            other = by_key[(backend, name)]
            difference = np.abs(other - reference)
            rows.append(
                ParityRow(
                    loss=name,
                    reference=backends[0],
                    backend=backend,
                    max_abs=float(difference.max()),
                    max_rel=float(np.max(difference / np.maximum(np.abs(reference), np.finfo(np.float64).tiny))),
                )
            )
    return rows


def save_results(path: Path, config: dict[str, Any], problem: Problem, runs: Sequence[Run]) -> None:
    """Write the configuration, metrics, curves and parity rows as JSON.

    Args:
        path: the ``.json`` file to write.
        config: the command's settings.
        problem: the demo problem.
        runs: the finished runs.

    Returns:
        Nothing; the file is written.
    """
    document = {
        "config": config,
        "train_class_counts": np.bincount(problem.y_train, minlength=problem.num_classes).tolist(),
        "test_class_counts": np.bincount(problem.y_test, minlength=problem.num_classes).tolist(),
        "runs": [
            {
                "backend": r.backend,
                "loss": r.loss.name,
                "spec": r.loss.spec.to_dict(),
                "metrics": summary(r, problem),
                "train_loss": r.result.train_loss,
                "test_balanced_accuracy": r.result.test_balanced_accuracy,
            }
            for r in runs
        ],
        "parity": [row.__dict__ for row in parity(runs)],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def save_learning_curves(path: Path, runs: Sequence[Run]) -> None:
    """Plot training loss and test balanced accuracy per epoch for every run.

    Colour identifies the loss and line style the backend (the lines of different
    backends lie on top of each other when the frameworks agree). With several
    backends a third panel shows each backend's relative distance to the first
    backend's training-loss curve.

    Args:
        path: the image file to write (format from the suffix).
        runs: the finished runs.

    Returns:
        Nothing; the file is written.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(r.loss.name for r in runs))
    backends = list(dict.fromkeys(r.backend for r in runs))
    styles = ["-", "--", ":"]
    palette = ["black", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    colour = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    style: dict[str, Any] = {backend: styles[i % len(styles)] for i, backend in enumerate(backends)}

    panels = 3 if len(backends) > 1 else 2
    figure = Figure(figsize=(5.0 * panels + 2.2, 4.2), layout="constrained")
    axes = figure.subplots(1, panels)
    loss_axes, accuracy_axes = axes[0], axes[1]
    reference = {r.loss.name: np.asarray(r.result.train_loss) for r in runs if r.backend == backends[0]}
    for r in runs:
        epochs = np.arange(1, len(r.result.train_loss) + 1)
        line = {"color": colour[r.loss.name], "linestyle": style[r.backend], "linewidth": 1.4}
        loss_axes.plot(epochs, r.result.train_loss, **line)
        accuracy_axes.plot(epochs, r.result.test_balanced_accuracy, **line)
        if panels == 3 and r.backend != backends[0]:
            relative = np.abs(np.asarray(r.result.train_loss) - reference[r.loss.name]) / reference[r.loss.name]
            axes[2].plot(epochs, np.maximum(relative, 1e-12), marker=".", **line)
    loss_axes.set(
        xlabel="epoch", ylabel="training loss (each run's own objective)", yscale="log", title="Training loss"
    )
    accuracy_axes.set(xlabel="epoch", ylabel="balanced accuracy", title="Test balanced accuracy")
    if panels == 3:
        axes[2].set(
            xlabel="epoch",
            ylabel=f"|L - L_{BACKENDS[backends[0]].label}| / L_{BACKENDS[backends[0]].label}",
            yscale="log",
            title=f"Distance to the {BACKENDS[backends[0]].label} curve",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[name], label=name) for name in names]
    if len(backends) > 1:
        handles += [Line2D([], [], color="grey", linestyle=style[b], label=BACKENDS[b].label) for b in backends]
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    figure.savefig(path, dpi=110)
