"""The demo's split, initial weights and metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss

from polyloss_cli import metrics
from polyloss_cli.data import glorot_mlp, long_tailed_split, make_problem


def test_split_is_long_tailed_disjoint_and_reproducible() -> None:
    labels = np.repeat(np.arange(10), 100)
    train, test = long_tailed_split(labels, seed=3, imbalance=10.0)
    assert not set(train) & set(test)
    train_counts = np.bincount(labels[train], minlength=10)
    test_counts = np.bincount(labels[test], minlength=10)
    assert np.all(test_counts == 30)
    assert train_counts[0] == 70
    assert train_counts[-1] == 7
    assert np.all(np.diff(train_counts) <= 0)
    again_train, again_test = long_tailed_split(labels, seed=3, imbalance=10.0)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    other_train, _ = long_tailed_split(labels, seed=4, imbalance=10.0)
    assert set(other_train) != set(train)


def test_imbalance_one_keeps_classes_equal() -> None:
    labels = np.repeat(np.arange(4), 20)
    train, _ = long_tailed_split(labels, seed=0, imbalance=1.0)
    assert np.all(np.bincount(labels[train]) == 14)


@pytest.mark.parametrize("imbalance", [0.5, float("nan")])
def test_split_rejects_bad_imbalance(imbalance: float) -> None:
    with pytest.raises(ValueError, match="imbalance"):
        long_tailed_split(np.repeat(np.arange(3), 5), seed=0, imbalance=imbalance)


def test_problem_batches_cover_every_example_once_per_epoch() -> None:
    problem = make_problem(seed=1, epochs=3, batch_size=50, learning_rate=0.1, imbalance=5.0)
    assert problem.epochs == 3
    for batches in problem.batches:
        assert all(len(b) <= 50 for b in batches)
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(len(problem.y_train)))
    assert not np.array_equal(np.concatenate(problem.batches[0]), np.concatenate(problem.batches[1]))
    assert problem.x_train.dtype == np.float32
    assert problem.x_train.max() <= 1.0
    assert all(w.dtype == np.float32 for w in problem.weights)


def test_glorot_weights_are_seeded_and_bounded() -> None:
    w1, b1, w2, b2 = glorot_mlp(7, 64, 32, 10)
    assert w1.shape == (64, 32)
    assert w2.shape == (32, 10)
    assert not b1.any()
    assert not b2.any()
    assert np.abs(w1).max() <= np.sqrt(6 / 96)
    assert np.abs(w1).max() > 0.9 * np.sqrt(6 / 96)
    np.testing.assert_array_equal(w1, glorot_mlp(7, 64, 32, 10)[0])


def test_metrics_against_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[labels] * rng.uniform(0, 1, size=(200, 1))
    predictions = logits.argmax(1)
    assert metrics.accuracy(logits, labels) == pytest.approx(np.mean(predictions == labels))
    assert metrics.balanced_accuracy(logits, labels) == pytest.approx(balanced_accuracy_score(labels, predictions))
    probabilities = np.exp(metrics.log_softmax(logits))
    assert metrics.nll(logits, labels) == pytest.approx(log_loss(labels, probabilities, labels=range(4)), rel=1e-9)
    recall = [np.mean(predictions[labels == k] == k) for k in range(4)]
    assert metrics.tail_accuracy(logits, labels, np.array([1, 3])) == pytest.approx((recall[1] + recall[3]) / 2)


def test_expected_calibration_error_by_hand() -> None:
    # Two examples at confidence 0.9 (one right, one wrong) and two at 0.6 (both right), 2 classes.
    confidence = np.array([0.9, 0.9, 0.6, 0.6])
    logits = np.stack([np.log(confidence), np.log1p(-confidence)], axis=1)
    labels = np.array([0, 1, 0, 0])
    # bin of 0.9: |0.5 - 0.9| = 0.4, weight 1/2; bin of 0.6: |1 - 0.6| = 0.4, weight 1/2.
    assert metrics.expected_calibration_error(logits, labels, bins=10) == pytest.approx(0.4)
    perfect = np.array([[10.0, -10.0], [-10.0, 10.0]])
    assert metrics.expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0, abs=1e-8)
