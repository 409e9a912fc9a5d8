"""The demo's problem: a long-tailed digits split, shared initial weights and a shared batch order.

Everything here is NumPy (plus scikit-learn's bundled ``load_digits``, which ships
with the package and needs no download), so every framework trains from exactly
the same arrays: the same examples, the same float32 initial weights and the same
minibatches in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Problem",
    "RunResult",
    "glorot_mlp",
    "long_tailed_digits",
    "long_tailed_split",
    "make_problem",
    "validation_split",
]

#: Width of the MLP's single hidden layer.
HIDDEN_UNITS = 64
#: Share of each class held out for the balanced test split.
TEST_FRACTION = 0.3
#: Share of each class of the (long-tailed) training split held out for choosing the learning rate.
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class Problem:
    """One training problem, identical for every loss and every framework.

    Attributes:
        x_train: float32 features the model is trained on, shape ``(n_train, 64)``, scaled to ``[0, 1]``.
        y_train: int64 class indices, shape ``(n_train,)``.
        x_test: float32 features of the test split.
        y_test: int64 class indices of the test split.
        x_val: float32 features of the validation split, held out from the long-tailed training
            data (never from the test split); the demo chooses learning rates on it.
        y_val: int64 class indices of the validation split.
        weights: ``(w1, b1, w2, b2)`` float32 initial weights; kernels are stored
            ``(fan_in, fan_out)`` (Keras / JAX layout; torch takes the transpose).
        batches: for each epoch, the list of index arrays of its minibatches.
        learning_rate: plain SGD step size.
        num_classes: number of classes (10).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    weights: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    batches: list[list[np.ndarray]]
    learning_rate: float
    x_val: np.ndarray = field(default_factory=lambda: np.zeros((0, 64), np.float32))
    y_val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_classes: int = 10

    @property
    def epochs(self) -> int:
        """Number of epochs in the batch schedule."""
        return len(self.batches)


@dataclass
class RunResult:
    """What one training run returns.

    Attributes:
        train_loss: per epoch, the mean training loss over that epoch's minibatches
            (weighted by batch size, i.e. the average per-example loss).
        test_balanced_accuracy: per epoch, the balanced accuracy on the test split
            after that epoch.
        test_logits: float64 logits of the test split after the last epoch.
        val_logits: float64 logits of the validation split after the last epoch.
        seconds: wall time of the run (model build, compilation and training).
    """

    train_loss: list[float] = field(default_factory=list)
    test_balanced_accuracy: list[float] = field(default_factory=list)
    test_logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    val_logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    seconds: float = 0.0


def long_tailed_split(labels: np.ndarray, seed: int, imbalance: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a long-tailed training split and a class-proportional test split.

    Each class gives the same share (``TEST_FRACTION``) of its examples to the
    test split, so the test split is as balanced as the data. From the rest,
    class ``k`` of ``C`` keeps ``n_max * imbalance ** (-k / (C - 1))`` examples
    (at least one), ``n_max`` being the smallest remaining class size: class 0 is
    the head and class ``C - 1`` has ``imbalance`` times fewer.

    Args:
        labels: int class indices ``0 .. C-1`` of the whole data set (``C >= 2``).
        seed: seed of the NumPy generator that shuffles each class.
        imbalance: ratio between the largest and the smallest training class (>= 1).

    Returns:
        ``(train_indices, test_indices)``, disjoint int64 arrays.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1
    if num_classes < 2:
        raise ValueError(f"labels must contain at least 2 classes, got {num_classes}")
    if not imbalance >= 1.0:
        raise ValueError(f"imbalance must be >= 1, got {imbalance!r}")
    rng = np.random.default_rng(seed)
    pools, test_parts = [], []
    for k in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == k))
        n_test = round(TEST_FRACTION * len(members))
        test_parts.append(members[:n_test])
        pools.append(members[n_test:])
    n_max = min(len(pool) for pool in pools)
    counts = [max(1, round(n_max * imbalance ** (-k / (num_classes - 1)))) for k in range(num_classes)]
    train = np.concatenate([pool[:count] for pool, count in zip(pools, counts, strict=True)])
    return train.astype(np.int64), np.concatenate(test_parts).astype(np.int64)


def long_tailed_digits(seed: int, imbalance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, split by :func:`long_tailed_split`.

    Args:
        seed: seed of the split.
        imbalance: ratio between the largest and the smallest training class (>= 1).

    Returns:
        ``(x_train, y_train, x_test, y_test)``: float32 features scaled to
        ``[0, 1]`` and int64 labels.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = (np.asarray(digits.data, dtype=np.float64) / 16.0).astype(np.float32)
    labels = np.asarray(digits.target, dtype=np.int64)
    train, test = long_tailed_split(labels, seed, imbalance)
    return features[train], labels[train], features[test], labels[test]


def validation_split(
    labels: np.ndarray, seed: int, fraction: float = VALIDATION_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a share of every class of a training split for validation.

    Class ``k`` with ``n_k`` examples gives ``round(fraction * n_k)`` of them, at
    least one and at most ``n_k - 1`` (a class with one example gives none), so
    the validation split has the training split's long tail and every class keeps
    an example to train on.

    Args:
        labels: int class indices of the training split.
        seed: seed of the NumPy generator that chooses the held-out examples.
        fraction: share of each class to hold out, in ``(0, 1)``.

    Returns:
        ``(fit_positions, validation_positions)``: disjoint sorted int64 positions into ``labels``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        held.append(members[:count])
    validation = np.sort(np.concatenate(held)).astype(np.int64)
    fit = np.setdiff1d(np.arange(len(labels)), validation).astype(np.int64)
    return fit, validation


def glorot_mlp(
    seed: int, n_in: int, n_hidden: int, n_out: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Glorot-uniform float32 weights and zero biases for a one-hidden-layer MLP.

    Args:
        seed: seed of the NumPy generator.
        n_in: input features.
        n_hidden: hidden units.
        n_out: classes.

    Returns:
        ``(w1, b1, w2, b2)`` with kernels of shape ``(fan_in, fan_out)``.
    """
    rng = np.random.default_rng(seed)

    def kernel(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)

    w1 = kernel(n_in, n_hidden)
    w2 = kernel(n_hidden, n_out)
    return w1, np.zeros(n_hidden, np.float32), w2, np.zeros(n_out, np.float32)


def make_problem(*, seed: int, epochs: int, batch_size: int, learning_rate: float, imbalance: float) -> Problem:
    """Build the demo's problem: data split, initial weights and batch order from one seed.

    The long-tailed training data is split once more into the examples the model
    is trained on and a validation split (:func:`validation_split`); the test
    split is used for nothing but the reported test metrics.

    Args:
        seed: the one seed behind the split, the weights and the batch order.
        epochs: number of passes over the training split.
        batch_size: examples per minibatch (the last one of an epoch may be smaller).
        learning_rate: plain SGD step size.
        imbalance: ratio between the largest and the smallest training class.

    Returns:
        The :class:`Problem`.
    """
    x_labelled, y_labelled, x_test, y_test = long_tailed_digits(seed, imbalance)
    fit, validation = validation_split(y_labelled, seed + 3)
    x_train, y_train = x_labelled[fit], y_labelled[fit]
    num_classes = int(max(y_labelled.max(), y_test.max())) + 1
    weights = glorot_mlp(seed + 1, x_train.shape[1], HIDDEN_UNITS, num_classes)
    order = np.random.default_rng(seed + 2)
    n = len(y_train)
    batches = []
    for _ in range(epochs):
        permutation = order.permutation(n)
        batches.append([permutation[start : start + batch_size] for start in range(0, n, batch_size)])
    return Problem(
        x_train,
        y_train,
        x_test,
        y_test,
        weights,
        batches,
        float(learning_rate),
        x_labelled[validation],
        y_labelled[validation],
        num_classes,
    )
