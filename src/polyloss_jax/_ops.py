"""The few jax operations the core maths needs, as a ``polyloss_core.series.ArrayOps``.

``a + alpha * b`` stays the operators' default: XLA fuses it as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from polyloss_core.series import ArrayOps

OPS = ArrayOps(where=jnp.where, tiny=lambda x: float(jnp.finfo(x.dtype).tiny), sigmoid=jax.nn.sigmoid)
