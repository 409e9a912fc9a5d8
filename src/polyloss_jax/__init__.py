"""PolyLoss for JAX, with optax's calling conventions.

Arrays are positional ``(logits, labels)``, options keyword-only, the output
is the unreduced per-example (softmax) or per-element (sigmoid) loss, and the
softmax losses take optax's ``axis`` and ``where`` arguments:

- ``poly1_cross_entropy``: probability labels, the counterpart of
  ``optax.losses.poly_loss_cross_entropy`` (our default ``epsilon`` is 1.0).
- ``poly1_cross_entropy_with_integer_labels``: class indices, a gather on
  top of optax's integer-label cross-entropy.
- ``poly1_sigmoid_focal_loss``: Poly-1 on top of
  ``optax.losses.sigmoid_focal_loss``.
- ``poly_loss``: any ``PolySpec`` (Poly-N, drop-N,
  focal, label smoothing, class weights) in the softmax or sigmoid family.
- ``linear_poly1_cross_entropy_with_integer_labels`` and ``linear_poly_loss``:
  a linear head (``hidden @ weight.T``) and the loss in one tiled pass that never
  stores the ``(tokens, vocab)`` logits, for language-model vocabularies
  (first derivatives: a ``custom_vjp``).

Everything is a pure function of arrays, so ``jit``, ``vmap``, ``grad``,
``jacfwd`` and ``hessian`` apply directly.

Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
"""

from polyloss_core import PolySpec
from polyloss_core import __version__ as __version__

from .functional import (
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
    poly_loss,
)
from .linear import linear_poly1_cross_entropy_with_integer_labels, linear_poly_loss

__all__ = [
    "PolySpec",
    "linear_poly1_cross_entropy_with_integer_labels",
    "linear_poly_loss",
    "poly1_cross_entropy",
    "poly1_cross_entropy_with_integer_labels",
    "poly1_sigmoid_focal_loss",
    "poly_loss",
]
