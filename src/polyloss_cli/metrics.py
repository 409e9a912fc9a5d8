"""Evaluation metrics of the demo, computed in float64 NumPy from test-set logits."""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "balanced_accuracy", "expected_calibration_error", "log_softmax", "nll", "tail_accuracy"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64.

    Args:
        logits: array of shape ``(n, C)``.

    Returns:
        float64 array of shape ``(n, C)``.
    """
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose arg-max class is the label.

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.

    Returns:
        Accuracy in ``[0, 1]``.
    """
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def per_class_recall(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class without examples).

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.
        num_classes: ``C``.

    Returns:
        float64 array of shape ``(C,)``.
    """
    predictions = np.argmax(logits, axis=1)
    recall = np.full(num_classes, np.nan)
    for k in range(num_classes):
        members = labels == k
        if members.any():
            recall[k] = np.mean(predictions[members] == k)
    return recall


def balanced_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``labels``.

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.

    Returns:
        Balanced accuracy in ``[0, 1]``.
    """
    return float(np.nanmean(per_class_recall(logits, labels, logits.shape[1])))


def tail_accuracy(logits: np.ndarray, labels: np.ndarray, tail_classes: np.ndarray) -> float:
    """Mean recall over the given (rare) classes.

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.
        tail_classes: indices of the classes to average over.

    Returns:
        Mean recall of ``tail_classes`` in ``[0, 1]``.
    """
    recall = per_class_recall(logits, labels, logits.shape[1])
    return float(np.nanmean(recall[np.asarray(tail_classes)]))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (cross-entropy, natural log).

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.

    Returns:
        The mean NLL.
    """
    log_p = log_softmax(logits)
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence with equal-width bins.

    ``ECE = sum_b (n_b / n) |accuracy_b - mean confidence_b|`` over ``bins``
    intervals of ``(0, 1]``.

    Args:
        logits: ``(n, C)`` scores.
        labels: ``(n,)`` class indices.
        bins: number of confidence bins. Default 15.

    Returns:
        ECE in ``[0, 1]``.
    """
    probabilities = np.exp(log_softmax(logits))
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)
