"""Train a flax NNX classifier with optax and Poly-1 cross-entropy, all inside ``nnx.jit``.

The data are generated: ``NUM_CLASSES`` Gaussian clusters in ``DIM`` dimensions
with a share of flipped labels, split into a training and a held-out set. A
two-layer MLP is trained with Adam on minibatches; the training step (forward
pass, loss, gradients, optimizer update) is one compiled function.

Run it with::

    python examples/jax_flax_training.py [--epsilon 1.0] [--steps 400] [--seed 0]

The test suite imports :func:`train` and checks that the loss falls and the
held-out accuracy is high.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from polyloss_jax import poly1_cross_entropy_with_integer_labels

NUM_CLASSES = 10
DIM = 32
NUM_TRAIN = 4096
NUM_TEST = 1024
LABEL_NOISE = 0.05


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clustered inputs with a few flipped labels: ``(x_train, y_train, x_test, y_test)``."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=1.2, size=(NUM_CLASSES, DIM))
    total = NUM_TRAIN + NUM_TEST
    labels = rng.integers(0, NUM_CLASSES, size=total)
    inputs = centers[labels] + rng.normal(size=(total, DIM))
    flip = rng.random(total) < LABEL_NOISE
    labels = np.where(flip, rng.integers(0, NUM_CLASSES, size=total), labels)
    inputs = inputs.astype(np.float32)
    labels = labels.astype(np.int32)
    return inputs[:NUM_TRAIN], labels[:NUM_TRAIN], inputs[NUM_TRAIN:], labels[NUM_TRAIN:]


class MLP(nnx.Module):
    """``Linear -> ReLU -> Linear`` producing class logits."""

    def __init__(self, features: int, hidden: int, classes: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(features, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(nnx.relu(self.hidden(x)))


def train(*, epsilon: float = 1.0, steps: int = 400, batch_size: int = 128, seed: int = 0) -> dict[str, float]:
    """Train the MLP with Poly-1 and Adam; return the first and last losses and the accuracies."""
    x_train, y_train, x_test, y_test = make_data(seed)
    model = MLP(DIM, 64, NUM_CLASSES, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: MLP) -> jax.Array:
            logits = model(x)
            # Per-example Poly-1 values; the reduction is the caller's choice, as in optax.
            return poly1_cross_entropy_with_integer_labels(logits, y, epsilon=epsilon).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def accuracy(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(jnp.argmax(model(x), axis=-1) == y)

    order = np.random.default_rng(seed + 1)
    losses = []
    for _ in range(steps):
        batch = order.integers(0, NUM_TRAIN, size=batch_size)
        losses.append(float(train_step(model, optimizer, jnp.asarray(x_train[batch]), jnp.asarray(y_train[batch]))))
    window = max(1, steps // 10)
    return {
        "first_loss": float(np.mean(losses[:window])),
        "final_loss": float(np.mean(losses[-window:])),
        "train_accuracy": float(accuracy(model, jnp.asarray(x_train), jnp.asarray(y_train))),
        "test_accuracy": float(accuracy(model, jnp.asarray(x_test), jnp.asarray(y_test))),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=1.0, help="Poly-1 epsilon (default 1.0)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = train(epsilon=args.epsilon, steps=args.steps, seed=args.seed)
    seconds = time.perf_counter() - start
    print(
        f"epsilon={args.epsilon:g}: loss {result['first_loss']:.3f} -> {result['final_loss']:.3f}, "
        f"train accuracy {result['train_accuracy']:.3f}, test accuracy {result['test_accuracy']:.3f} "
        f"({seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
