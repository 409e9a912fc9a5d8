"""polyloss_cli: the ``polyloss`` command line.

Three commands: ``polyloss demo`` trains one small MLP on scikit-learn's bundled
handwritten digits with several members of the PolyLoss family (in PyTorch, Keras
and/or JAX, through this project's adapters), ``polyloss plot`` draws the loss and
its gradient against ``p_t``, and ``polyloss coeffs`` prints the series
coefficients of a spec. Deep-learning frameworks, matplotlib and scikit-learn are
imported only by the commands that need them.
"""

__all__ = ["__version__"]
from polyloss_core import __version__ as __version__
