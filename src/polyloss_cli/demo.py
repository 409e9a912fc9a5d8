"""The ``polyloss demo`` experiment: losses, seeds, learning-rate choice, statistics and outputs.

For every seed (one data split, one set of initial weights, one batch order) each
loss trains once per learning rate of a small grid. Each loss then gets the
learning rate with the best mean validation balanced accuracy over the seeds
(the validation split is held out from the training data; the test split plays
no part in any choice), and the report gives, at those learning rates, the mean
test metrics with 95 % intervals and each loss's paired difference to
cross-entropy over the same seeds.

No framework is imported here; :mod:`polyloss_cli.runners` loads the requested
ones on demand.
"""

from __future__ import annotations

import json
import math
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
    "Choice",
    "Comparison",
    "Interval",
    "NamedLoss",
    "ParityRow",
    "Run",
    "choose_learning_rates",
    "compare",
    "demo_losses",
    "interval",
    "json_safe",
    "parity",
    "run_all",
    "save_learning_curves",
    "save_results",
    "summary",
    "tail_classes",
]

#: Called with ``(backend, loss name, epoch, train loss)`` after every epoch.
ProgressCallback = Callable[[str, str, int, float], None]
#: Metrics reported per run; higher is better for the first three, lower for the last two.
METRICS = ("accuracy", "balanced_accuracy", "tail_accuracy", "nll", "ece")


@dataclass(frozen=True)
class NamedLoss:
    """A loss of the comparison: a short name and its spec."""

    name: str
    spec: PolySpec


@dataclass(frozen=True)
class Run:
    """One finished training run: one backend, loss, seed and learning rate."""

    backend: str
    loss: NamedLoss
    seed: int
    lr: float
    result: RunResult

    @property
    def diverged(self) -> bool:
        """Whether the training loss or the final logits contain a NaN or an infinity."""
        return not (
            np.all(np.isfinite(self.result.train_loss))
            and np.all(np.isfinite(self.result.test_logits))
            and np.all(np.isfinite(self.result.val_logits))
        )


@dataclass(frozen=True)
class ParityRow:
    """How far one backend's per-epoch training loss is from the reference backend's.

    Attributes:
        loss: the loss name.
        reference: the reference backend (the first one trained).
        backend: the compared backend.
        max_abs: ``max |L_backend - L_reference|`` over epochs, seeds and learning rates.
        max_rel: ``max |L_backend - L_reference| / |L_reference|`` over the same.
    """

    loss: str
    reference: str
    backend: str
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided 95 % Student-t interval over seeds.

    Attributes:
        mean: the mean over seeds.
        low: lower end (NaN with a single seed).
        high: upper end (NaN with a single seed).
        n: number of seeds.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN with a single seed)."""
        return (self.high - self.low) / 2.0


@dataclass(frozen=True)
class Choice:
    """The learning rate chosen for one (backend, loss) on the validation split.

    Attributes:
        backend: the backend.
        loss: the loss name.
        lr: the chosen learning rate, or None when every rate of the grid diverged.
        validation: per learning rate of the grid, the mean validation balanced
            accuracy over seeds (None for a rate at which some seed diverged).
    """

    backend: str
    loss: str
    lr: float | None
    validation: dict[float, float | None]


@dataclass(frozen=True)
class Comparison:
    """One loss at its chosen learning rate: test metrics over seeds and the paired difference to CE.

    Attributes:
        backend: the backend.
        loss: the loss name.
        lr: the chosen learning rate (None: every rate diverged, no statistics).
        runs: the runs at that learning rate, one per seed.
        metrics: per metric, the :class:`Interval` of its test value over seeds.
        difference: per metric, the :class:`Interval` of ``metric(loss) - metric(CE)``
            over the same seeds (absent for CE itself and for diverged losses).
        wins: seeds on which the loss's test balanced accuracy beats CE's.
    """

    backend: str
    loss: str
    lr: float | None
    runs: tuple[Run, ...]
    metrics: dict[str, Interval]
    difference: dict[str, Interval]
    wins: int = 0

    def verdict(self) -> str:
        """In words, how the balanced-accuracy difference to CE compares with the seed-to-seed noise."""
        if self.lr is None:
            return "diverged at every learning rate"
        delta = self.difference.get("balanced_accuracy")
        if delta is None:
            return "reference"
        if not math.isfinite(delta.low):
            return "one seed: no interval"
        if delta.low > 0:
            return "better than CE"
        if delta.high < 0:
            return "worse than CE"
        return "within noise"


def demo_losses(epsilons: Sequence[float], gamma: float, focal_epsilon: float) -> list[NamedLoss]:
    """The compared losses: CE, focal, Poly-1 per epsilon, and Poly-1 focal.

    Args:
        epsilons: Poly-1 epsilons, one loss each.
        gamma: focal exponent of the focal and Poly-1 focal losses.
        focal_epsilon: epsilon of the Poly-1 focal loss.

    Returns:
        The losses in table order; CE, the reference of the paired differences, first.

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
    problems: Sequence[tuple[int, Problem]],
    learning_rates: Sequence[float],
    on_epoch: ProgressCallback | None = None,
    on_start: Callable[[str, str], None] | None = None,
) -> list[Run]:
    """Train every loss at every learning rate on every seed's problem, with every backend.

    Args:
        backends: keys of :data:`polyloss_cli.runners.BACKENDS`, in order.
        losses: the losses to compare.
        problems: ``(seed, problem)`` pairs; all runs of one seed share its data,
            initial weights and batch order.
        learning_rates: the grid of plain-SGD learning rates.
        on_epoch: optional callback ``(backend, loss, epoch, train_loss)``.
        on_start: optional callback ``(backend, description)`` before each run.

    Returns:
        One :class:`Run` per (backend, seed, learning rate, loss), in that nesting order.
    """
    runs = []
    for backend in backends:
        for seed, problem in problems:
            for lr in learning_rates:
                configured = _with_learning_rate(problem, lr)
                for loss in losses:
                    if on_start is not None:
                        on_start(backend, f"{loss.name} seed {seed} lr {lr:g}")

                    def report(epoch: int, value: float, backend: str = backend, name: str = loss.name) -> None:
                        if on_epoch is not None:
                            on_epoch(backend, name, epoch, value)

                    runs.append(Run(backend, loss, seed, lr, run(backend, loss.spec, configured, report)))
    return runs


def _with_learning_rate(problem: Problem, lr: float) -> Problem:
    from dataclasses import replace

    return replace(problem, learning_rate=float(lr))


def tail_classes(problem: Problem) -> np.ndarray:
    """The rarer half of the classes in the training split.

    Args:
        problem: the demo problem.

    Returns:
        Class indices sorted from rarest.
    """
    counts = np.bincount(problem.y_train, minlength=problem.num_classes)
    return np.argsort(counts, kind="stable")[: problem.num_classes // 2]


def summary(run: Run, problem: Problem) -> dict[str, float | None]:
    """Test-set metrics of one run (None for every metric of a diverged run).

    Args:
        run: the finished run.
        problem: the run's problem (for the test labels and the tail classes).

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``tail_accuracy``, ``nll``, ``ece``,
        ``val_balanced_accuracy``, ``val_nll`` and ``seconds``.
    """
    if run.diverged:
        return {**dict.fromkeys((*METRICS, "val_balanced_accuracy", "val_nll")), "seconds": run.result.seconds}
    logits, labels = run.result.test_logits, problem.y_test
    return {
        "accuracy": metrics.accuracy(logits, labels),
        "balanced_accuracy": metrics.balanced_accuracy(logits, labels),
        "tail_accuracy": metrics.tail_accuracy(logits, labels, tail_classes(problem)),
        "nll": metrics.nll(logits, labels),
        "ece": metrics.expected_calibration_error(logits, labels),
        "val_balanced_accuracy": metrics.balanced_accuracy(run.result.val_logits, problem.y_val),
        "val_nll": metrics.nll(run.result.val_logits, problem.y_val),
        "seconds": run.result.seconds,
    }


def interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean and two-sided 95 % Student-t interval of ``values`` (one value per seed).

    Args:
        values: finite numbers, at least one.

    Returns:
        The :class:`Interval`; its ends are NaN for a single value.
    """
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if len(data) < 2:
        return Interval(mean, math.nan, math.nan, len(data))
    from scipy.stats import t

    half = float(t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / math.sqrt(len(data)))
    return Interval(mean, mean - half, mean + half, len(data))


def choose_learning_rates(runs: Sequence[Run], problems: dict[int, Problem]) -> list[Choice]:
    """For each (backend, loss), the learning rate with the best mean validation balanced accuracy.

    A rate at which any seed diverged is not eligible. Ties go to the lower mean
    validation NLL, then to the smaller rate. Only the validation split is read.

    Args:
        runs: the finished runs (every seed at every learning rate).
        problems: the problem of each seed (for the validation labels).

    Returns:
        One :class:`Choice` per (backend, loss), in run order.
    """
    groups: dict[tuple[str, str], dict[float, list[Run]]] = {}
    for r in runs:
        groups.setdefault((r.backend, r.loss.name), {}).setdefault(r.lr, []).append(r)
    choices = []
    for (backend, name), by_lr in groups.items():
        scores: dict[float, float | None] = {}
        ranking: dict[float, tuple[float, float, float]] = {}
        for lr, members in by_lr.items():
            if any(r.diverged for r in members):
                scores[lr] = None
                continue
            balanced = [metrics.balanced_accuracy(r.result.val_logits, problems[r.seed].y_val) for r in members]
            nll = [metrics.nll(r.result.val_logits, problems[r.seed].y_val) for r in members]
            scores[lr] = float(np.mean(balanced))
            ranking[lr] = (-float(np.mean(balanced)), float(np.mean(nll)), lr)
        best = min(ranking, key=ranking.__getitem__) if ranking else None
        choices.append(Choice(backend, name, best, scores))
    return choices


def compare(runs: Sequence[Run], problems: dict[int, Problem], choices: Sequence[Choice]) -> list[Comparison]:
    """Test metrics of every loss at its chosen learning rate, and paired differences to CE.

    The difference to CE is taken seed by seed (same data, initial weights and
    batch order), each loss at its own chosen learning rate, then summarised by
    :func:`interval`.

    Args:
        runs: the finished runs.
        problems: the problem of each seed.
        choices: the chosen learning rates (:func:`choose_learning_rates`).

    Returns:
        One :class:`Comparison` per choice, in the same order.
    """
    chosen: dict[tuple[str, str], list[Run]] = {}
    for choice in choices:
        members = [r for r in runs if (r.backend, r.loss.name, r.lr) == (choice.backend, choice.loss, choice.lr)]
        chosen[(choice.backend, choice.loss)] = sorted(members, key=lambda r: r.seed)
    values = {
        key: {m: np.array([summary(r, problems[r.seed])[m] for r in members], dtype=np.float64) for m in METRICS}
        for key, members in chosen.items()
    }
    comparisons = []
    for choice in choices:
        key = (choice.backend, choice.loss)
        if choice.lr is None:
            comparisons.append(Comparison(choice.backend, choice.loss, None, (), {}, {}))
            continue
        mine = values[key]
        summary_of = {m: interval(mine[m]) for m in METRICS}
        reference = values.get((choice.backend, "CE"))
        difference: dict[str, Interval] = {}
        wins = 0
        if choice.loss != "CE" and reference is not None and len(reference["accuracy"]) == len(mine["accuracy"]):
            difference = {m: interval(mine[m] - reference[m]) for m in METRICS}
            wins = int(np.sum(mine["balanced_accuracy"] > reference["balanced_accuracy"]))
        comparisons.append(
            Comparison(choice.backend, choice.loss, choice.lr, tuple(chosen[key]), summary_of, difference, wins)
        )
    return comparisons


def parity(runs: Sequence[Run]) -> list[ParityRow]:
    """Compare each backend's training-loss curves with the first backend's, loss by loss.

    Curves are paired by seed and learning rate; diverged runs are left out.

    Args:
        runs: the finished runs (several backends on the same losses).

    Returns:
        One row per (loss, non-reference backend); empty with a single backend.
    """
    backends = list(dict.fromkeys(r.backend for r in runs))
    if len(backends) < 2:
        return []
    curves = {
        (r.backend, r.loss.name, r.seed, r.lr): np.asarray(r.result.train_loss, dtype=np.float64)
        for r in runs
        if not r.diverged
    }
    rows = []
    for name in dict.fromkeys(r.loss.name for r in runs):
        for backend in backends[1:]:
            worst_abs, worst_rel = 0.0, 0.0
            for (b, n, seed, lr), reference in curves.items():
                other = curves.get((backend, n, seed, lr))
                if b != backends[0] or n != name or other is None:
                    continue
                difference = np.abs(other - reference)
                worst_abs = max(worst_abs, float(difference.max()))
                relative = difference / np.maximum(np.abs(reference), np.finfo(np.float64).tiny)
                worst_rel = max(worst_rel, float(relative.max()))
            rows.append(ParityRow(name, backends[0], backend, worst_abs, worst_rel))
    return rows


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that strict JSON parsers read it.

    Args:
        value: nested dicts, lists, tuples, floats, NumPy scalars and arrays.

    Returns:
        The same structure made of plain Python objects.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _interval_dict(i: Interval) -> dict[str, Any]:
    return {"mean": i.mean, "low": i.low, "high": i.high, "seeds": i.n}


def save_results(
    path: Path,
    config: dict[str, Any],
    problems: dict[int, Problem],
    runs: Sequence[Run],
    choices: Sequence[Choice],
    comparisons: Sequence[Comparison],
) -> None:
    """Write the settings, every run, the learning-rate choices and the comparison as strict JSON.

    Non-finite numbers (a diverged run) are written as ``null`` and the run is
    marked ``"diverged": true``.

    Args:
        path: the ``.json`` file to write.
        config: the command's settings.
        problems: the problem of each seed.
        runs: every finished run.
        choices: the chosen learning rates.
        comparisons: the summary at the chosen learning rates.

    Returns:
        Nothing; the file is written.
    """
    first = problems[min(problems)]
    document = {
        "config": config,
        "train_class_counts": np.bincount(first.y_train, minlength=first.num_classes).tolist(),
        "validation_class_counts": np.bincount(first.y_val, minlength=first.num_classes).tolist(),
        "test_class_counts": np.bincount(first.y_test, minlength=first.num_classes).tolist(),
        "runs": [
            {
                "backend": r.backend,
                "loss": r.loss.name,
                "spec": r.loss.spec.to_dict(),
                "seed": r.seed,
                "lr": r.lr,
                "diverged": r.diverged,
                "metrics": summary(r, problems[r.seed]),
                "train_loss": r.result.train_loss,
                "test_balanced_accuracy": r.result.test_balanced_accuracy,
            }
            for r in runs
        ],
        "learning_rate_choice": [
            {
                "backend": c.backend,
                "loss": c.loss,
                "lr": c.lr,
                "mean_validation_balanced_accuracy": [{"lr": lr, "value": v} for lr, v in c.validation.items()],
            }
            for c in choices
        ],
        "comparison": [
            {
                "backend": c.backend,
                "loss": c.loss,
                "lr": c.lr,
                "verdict": c.verdict(),
                "wins_over_ce": c.wins,
                "test": {m: _interval_dict(i) for m, i in c.metrics.items()},
                "difference_to_ce": {m: _interval_dict(i) for m, i in c.difference.items()},
            }
            for c in comparisons
        ],
        "parity": [row.__dict__ for row in parity(runs)],
    }
    text = json.dumps(json_safe(document), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def save_learning_curves(path: Path, comparisons: Sequence[Comparison], runs: Sequence[Run]) -> None:
    """Plot, per loss at its chosen learning rate, the mean over seeds and a 95 % band.

    Left: training loss per epoch (mean and band of its logarithm, as the axis is
    logarithmic); middle: test balanced accuracy per epoch
    (shown, never used for a choice). With several backends a third panel shows
    each backend's largest relative distance to the first backend's
    training-loss curves (same seed and learning rate).

    Args:
        path: the image file to write (format from the suffix).
        comparisons: the losses at their chosen learning rates (:func:`compare`).
        runs: every finished run (for the third panel).

    Returns:
        Nothing; the file is written.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(c.loss for c in comparisons))
    backends = list(dict.fromkeys(c.backend for c in comparisons))
    styles = ["-", "--", ":"]
    palette = ["black", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    colour = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    style: dict[str, Any] = {backend: styles[i % len(styles)] for i, backend in enumerate(backends)}

    panels = 3 if len(backends) > 1 else 2
    figure = Figure(figsize=(5.0 * panels + 2.6, 4.4), layout="constrained")
    axes = figure.subplots(1, panels)
    seeds = 0
    for c in comparisons:
        if not c.runs:
            continue
        seeds = len(c.runs)
        # The loss panel is logarithmic: its mean and band are taken on log(loss) (a geometric mean).
        for ax, field, scale in ((axes[0], "train_loss", np.log), (axes[1], "test_balanced_accuracy", None)):
            curves = np.array([getattr(r.result, field) for r in c.runs], dtype=np.float64)
            if scale is not None:
                curves = scale(curves)
            epochs = np.arange(1, curves.shape[1] + 1)
            bands = [interval(curves[:, e]) for e in range(curves.shape[1])]
            back = np.exp if scale is not None else (lambda v: v)
            mean = back(np.array([b.mean for b in bands]))
            ax.plot(epochs, mean, color=colour[c.loss], linestyle=style[c.backend], linewidth=1.4)
            if len(c.runs) > 1:
                low, high = back(np.array([b.low for b in bands])), back(np.array([b.high for b in bands]))
                ax.fill_between(epochs, low, high, color=colour[c.loss], alpha=0.15, linewidth=0)
    axes[0].set(
        xlabel="epoch",
        ylabel="training loss (each loss's own objective)",
        yscale="log",
        title="Training loss (geometric mean)",
    )
    axes[1].set(xlabel="epoch", ylabel="balanced accuracy", title="Test balanced accuracy")
    if panels == 3:
        reference = {
            (r.loss.name, r.seed, r.lr): np.asarray(r.result.train_loss)
            for r in runs
            if r.backend == backends[0] and not r.diverged
        }
        for backend in backends[1:]:
            for name in names:
                distances = [
                    np.abs(np.asarray(r.result.train_loss) - reference[(name, r.seed, r.lr)])
                    / reference[(name, r.seed, r.lr)]
                    for r in runs
                    if r.backend == backend
                    and r.loss.name == name
                    and (name, r.seed, r.lr) in reference
                    and not r.diverged
                ]
                if distances:
                    worst = np.max(distances, axis=0)
                    epochs = np.arange(1, len(worst) + 1)
                    axes[2].plot(
                        epochs, np.maximum(worst, 1e-12), marker=".", color=colour[name], linestyle=style[backend]
                    )
        label = BACKENDS[backends[0]].label
        axes[2].set(
            xlabel="epoch",
            ylabel=f"max |L - L_{label}| / L_{label}",
            yscale="log",
            title=f"Distance to the {label} curves",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[c.loss], label=f"{c.loss} (lr {c.lr:g})") for c in comparisons if c.lr]
    handles = list({h.get_label(): h for h in handles}.values())
    if len(backends) > 1:
        handles += [Line2D([], [], color="grey", linestyle=style[b], label=BACKENDS[b].label) for b in backends]
    figure.suptitle(f"Mean over {seeds} seeds with a 95 % band, each loss at its validation-chosen learning rate")
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    figure.savefig(path, dpi=110)
