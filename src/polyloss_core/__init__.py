"""polyloss_core: the framework-agnostic definition of the PolyLoss family.

NumPy only; no deep-learning framework is imported here. ``PolySpec``
holds the coefficients, ``polyloss_core.series`` evaluates the polynomial
with plain arithmetic for every adapter, and ``polyloss_core.reference`` is
the float64 oracle the adapters are tested against.

Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
"""

from . import checks, reference, series
from .checks import check_epsilon
from .series import ArrayOps, focal_factor, focal_power, horner, loss_from_ce, poly_loss_from_log_prob, polynomial_term
from .spec import FAMILIES, Family, PolySpec, check_family, poly1_spec

__all__ = [
    "FAMILIES",
    "ArrayOps",
    "Family",
    "PolySpec",
    "check_epsilon",
    "check_family",
    "checks",
    "focal_factor",
    "focal_power",
    "horner",
    "loss_from_ce",
    "poly1_spec",
    "poly_loss_from_log_prob",
    "polynomial_term",
    "reference",
    "series",
]
__version__ = "0.1.0"
