"""polyloss_tf: the PolyLoss family for Keras 3 (TensorFlow, JAX and PyTorch backends).

Keras conventions throughout: ``loss(y_true, y_pred)``, ``from_logits=False`` by
default, Keras reductions, ``sample_weight`` and masks handled by
``keras.losses.Loss``. Written with ``keras.ops`` only, so one implementation
runs on every Keras backend. Every class is registered serializable under the
package ``"polyloss"``.

Classes (each takes ``epsilon=1.0`` plus the arguments of the Keras loss it
extends, and equals that loss with ``epsilon=0``):
``Poly1CategoricalCrossentropy``, ``Poly1SparseCategoricalCrossentropy``,
``Poly1BinaryCrossentropy``, ``Poly1CategoricalFocalCrossentropy``,
``Poly1BinaryFocalCrossentropy``, and ``PolyLoss`` for any
``polyloss_core.PolySpec``. Functions: the same names in snake case, and
``poly_loss``.

Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
"""

from polyloss_core import PolySpec
from polyloss_core import __version__ as __version__

from .functional import (
    poly1_binary_crossentropy,
    poly1_binary_focal_crossentropy,
    poly1_categorical_crossentropy,
    poly1_categorical_focal_crossentropy,
    poly1_sparse_categorical_crossentropy,
    poly_loss,
)
from .losses import (
    Poly1BinaryCrossentropy,
    Poly1BinaryFocalCrossentropy,
    Poly1CategoricalCrossentropy,
    Poly1CategoricalFocalCrossentropy,
    Poly1SparseCategoricalCrossentropy,
    PolyLoss,
)

__all__ = [
    "Poly1BinaryCrossentropy",
    "Poly1BinaryFocalCrossentropy",
    "Poly1CategoricalCrossentropy",
    "Poly1CategoricalFocalCrossentropy",
    "Poly1SparseCategoricalCrossentropy",
    "PolyLoss",
    "PolySpec",
    "poly1_binary_crossentropy",
    "poly1_binary_focal_crossentropy",
    "poly1_categorical_crossentropy",
    "poly1_categorical_focal_crossentropy",
    "poly1_sparse_categorical_crossentropy",
    "poly_loss",
]
