"""The demo's statistics: the validation split, the learning-rate choice, intervals and paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polyloss_cli.data import RunResult, make_problem, validation_split
from polyloss_cli.demo import NamedLoss, Run, choose_learning_rates, compare, interval, json_safe
from polyloss_core import PolySpec

CE = NamedLoss("CE", PolySpec.cross_entropy())
POLY = NamedLoss("poly1 e=2", PolySpec.poly1(2.0))


def test_validation_is_held_out_of_the_training_split_per_class() -> None:
    labels = np.repeat(np.arange(4), [20, 10, 5, 1])
    fit, validation = validation_split(labels, seed=0, fraction=0.2)
    assert np.intersect1d(fit, validation).size == 0
    assert np.union1d(fit, validation).tolist() == list(range(len(labels)))
    assert np.bincount(labels[validation], minlength=4).tolist() == [4, 2, 1, 0]
    assert np.bincount(labels[fit], minlength=4).tolist() == [16, 8, 4, 1]


def test_problem_trains_validates_and_tests_on_disjoint_images() -> None:
    problem = make_problem(seed=3, epochs=1, batch_size=32, learning_rate=0.3, imbalance=20.0)
    rows = {
        name: {x.tobytes() for x in features}
        for name, features in (("train", problem.x_train), ("val", problem.x_val), ("test", problem.x_test))
    }
    # Some digits images are exact duplicates of each other; compare counts with a tolerance of a few.
    assert len(rows["train"] & rows["test"]) <= 3
    assert len(rows["val"] & rows["test"]) <= 3
    assert len(rows["train"] & rows["val"]) <= 3
    assert len(problem.y_val) > 50
    assert max(int(i.max()) for i in problem.batches[0]) < len(problem.y_train)


def _run(loss: NamedLoss, seed: int, lr: float, val_correct: int, test_correct: int, diverged: bool = False) -> Run:
    """A fake run whose validation / test logits get the first ``*_correct`` of 10 labels (class 0..9) right."""

    def logits(correct: int) -> np.ndarray:
        z = np.zeros((10, 10))
        for i in range(10):
            z[i, i if i < correct else (i + 1) % 10] = 5.0
        return z

    train_loss = [1.0, math.nan] if diverged else [1.0, 0.5]
    return Run("torch", loss, seed, lr, RunResult(train_loss, [0.5, 0.6], logits(test_correct), logits(val_correct)))


class _Problem:
    y_val = np.arange(10)
    y_test = np.arange(10)
    y_train = np.repeat(np.arange(10), 3)
    num_classes = 10


def test_learning_rate_is_chosen_on_validation_never_on_test() -> None:
    problems = {0: _Problem(), 1: _Problem()}
    runs = [
        # Validation prefers lr 0.1; the test split would prefer lr 0.9.
        _run(POLY, seed, 0.1, val_correct=9, test_correct=5)
        for seed in (0, 1)
    ] + [_run(POLY, seed, 0.9, val_correct=6, test_correct=10) for seed in (0, 1)]
    (choice,) = choose_learning_rates(runs, problems)  # type: ignore[arg-type]
    assert choice.lr == 0.1
    assert choice.validation == {0.1: pytest.approx(0.9), 0.9: pytest.approx(0.6)}


def test_a_learning_rate_that_diverges_on_any_seed_is_not_chosen() -> None:
    problems = {0: _Problem(), 1: _Problem()}
    runs = [_run(POLY, 0, 0.9, 10, 10), _run(POLY, 1, 0.9, 10, 10, diverged=True)]
    runs += [_run(POLY, seed, 0.1, 5, 5) for seed in (0, 1)]
    (choice,) = choose_learning_rates(runs, problems)  # type: ignore[arg-type]
    assert choice.lr == 0.1
    assert choice.validation[0.9] is None


def test_interval_is_the_student_t_95_percent_interval() -> None:
    result = interval([1.0, 2.0, 3.0])
    # mean 2, sample sd 1, t(0.975, 2) = 4.302653
    assert result.mean == pytest.approx(2.0)
    assert result.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    single = interval([0.7])
    assert single.mean == 0.7
    assert math.isnan(single.low)
    assert math.isnan(single.high)


def test_difference_to_ce_is_paired_by_seed() -> None:
    problems = {seed: _Problem() for seed in range(3)}
    # CE's accuracy varies a lot across seeds; Poly-1 is exactly one image (0.1) better on each seed.
    runs = [_run(CE, seed, 0.3, 5, correct) for seed, correct in enumerate((3, 6, 9))]
    runs += [_run(POLY, seed, 0.3, 5, correct + 1) for seed, correct in enumerate((3, 6, 9))]
    choices = choose_learning_rates(runs, problems)  # type: ignore[arg-type]
    ce, poly = compare(runs, problems, choices)  # type: ignore[arg-type]
    assert ce.verdict() == "reference"
    delta = poly.difference["accuracy"]
    # An unpaired comparison would call this noise (the per-loss intervals overlap widely); paired it is exact.
    assert delta.mean == pytest.approx(0.1)
    assert delta.half_width == pytest.approx(0.0, abs=1e-12)
    assert poly.metrics["accuracy"].half_width > 0.3
    assert poly.verdict() == "better than CE"
    assert poly.wins == 3


def test_json_safe_writes_null_for_every_non_finite_number() -> None:
    value = {"a": [1.0, math.nan, np.float32("inf")], "b": np.array([-np.inf, 2.0]), "c": (np.int64(3), None)}
    assert json_safe(value) == {"a": [1.0, None, None], "b": [None, 2.0], "c": [3, None]}
