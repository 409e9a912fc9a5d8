"""polyloss_torch: the PolyLoss family for PyTorch.

Functional forms live in ``polyloss_torch.functional`` and are re-exported
here; the ``nn.Module`` classes only hold configuration and call them.

* ``poly1_cross_entropy`` / ``Poly1CrossEntropyLoss``: drop-in
  replacements for ``F.cross_entropy`` / ``nn.CrossEntropyLoss``.
* ``poly1_focal_loss`` / ``Poly1FocalLoss``: Poly-1 sigmoid focal loss
  with ``torchvision.ops.sigmoid_focal_loss`` conventions.
* ``poly_loss`` / ``PolyLoss``: any ``PolySpec``,
  softmax or sigmoid family.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from polyloss_core import PolySpec
from polyloss_core import __version__ as __version__

from .functional import poly1_cross_entropy, poly1_focal_loss, poly_loss
from .modules import Poly1CrossEntropyLoss, Poly1FocalLoss, PolyLoss

__all__ = [
    "Poly1CrossEntropyLoss",
    "Poly1FocalLoss",
    "PolyLoss",
    "PolySpec",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "poly_loss",
]
