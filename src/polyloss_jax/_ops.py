"""The few jax operations the core maths needs (``polyloss_core.series.ArrayOps``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from polyloss_core.series import ArrayOps


class JaxOps(ArrayOps):
    """``where``, ``sigmoid`` and ``tiny`` for jax arrays (``a + alpha * b`` fuses under XLA as it is)."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return jnp.where(condition, a, b)

    def sigmoid(self, x: Any) -> Any:
        return jax.nn.sigmoid(x)

    def tiny(self, x: Any) -> float:
        return float(jnp.finfo(x.dtype).tiny)


OPS = JaxOps()
