"""polyloss_torch: the PolyLoss family for PyTorch.

Functional forms live in ``polyloss_torch.functional`` and are re-exported
here; the ``nn.Module`` classes only hold configuration and call them.

* ``poly1_cross_entropy`` / ``Poly1CrossEntropyLoss``: drop-in
  replacements for ``F.cross_entropy`` / ``nn.CrossEntropyLoss``.
* ``poly1_focal_loss`` / ``Poly1FocalLoss``: Poly-1 sigmoid focal loss
  with ``torchvision.ops.sigmoid_focal_loss`` conventions.
* ``poly_loss`` / ``PolyLoss``: any ``PolySpec``,
  softmax or sigmoid family.
* ``linear_poly1_cross_entropy`` / ``linear_poly_loss`` /
  ``LinearPoly1CrossEntropyLoss`` / ``LinearPolyLoss``: a language-model head
  (``hidden @ weight.T``) fused with the loss, without the logit matrix.
* ``poly1_causal_lm_loss``: a Hugging Face ``transformers`` causal-LM loss
  (``model.loss_function`` or ``Trainer(compute_loss_func=...)``).

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from polyloss_core import PolySpec
from polyloss_core import __version__ as __version__

from .causal_lm import poly1_causal_lm_loss
from .functional import poly1_cross_entropy, poly1_focal_loss, poly_loss
from .linear import LinearPoly1CrossEntropyLoss, LinearPolyLoss, linear_poly1_cross_entropy, linear_poly_loss
from .modules import Poly1CrossEntropyLoss, Poly1FocalLoss, PolyLoss

__all__ = [
    "LinearPoly1CrossEntropyLoss",
    "LinearPolyLoss",
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "PolyLoss",
    "PolySpec",
    "linear_poly1_cross_entropy",
    "linear_poly_loss",
    "poly1_causal_lm_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "poly_loss",
]
