"""Train a small Keras classifier with Poly-1 cross-entropy, save it as ``.keras`` and load it back.

Runs on any Keras backend (``KERAS_BACKEND=tensorflow|jax|torch``) in a few
seconds on a CPU::

    python examples/keras_compile.py

The data are three interleaved spirals, generated on the fly. The loss is
``Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True)``: cross-
entropy plus ``2 * (1 - p_t)``. Because the loss class is registered with Keras
under the package ``"polyloss"``, ``keras.saving.load_model`` restores the
compiled model without ``custom_objects``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np

from polyloss_tf import Poly1SparseCategoricalCrossentropy

CLASSES = 3


def spirals(n_per_class: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on three noisy spiral arms in 2-D, with the arm as the label."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.1, 1.0, n_per_class), CLASSES)
    labels = np.repeat(np.arange(CLASSES), n_per_class)
    angle = labels * 2 * np.pi / CLASSES + 3.5 * radius + rng.normal(scale=0.15, size=radius.shape)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
    return points, labels


def build_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES),  # logits, hence from_logits=True below
        ]
    )


def main() -> dict[str, float]:
    x, y = spirals()
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.02),
        loss=Poly1SparseCategoricalCrossentropy(epsilon=2.0, from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=15, batch_size=100, verbose=0)
    loss, accuracy = model.evaluate(x, y, verbose=0)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poly1_spirals.keras"
        model.save(path)
        restored = keras.saving.load_model(path)  # no custom_objects needed
    restored_loss, restored_accuracy = restored.evaluate(x, y, verbose=0)

    print(
        f"backend {keras.backend.backend()}: loss {history.history['loss'][0]:.3f} -> {loss:.3f}, accuracy {accuracy:.3f}"
    )
    print(f"restored {type(restored.loss).__name__}(epsilon={restored.loss.epsilon}): loss {restored_loss:.3f}")
    return {"loss": loss, "accuracy": accuracy, "restored_loss": restored_loss, "restored_accuracy": restored_accuracy}


if __name__ == "__main__":
    main()
