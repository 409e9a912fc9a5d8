"""The few ``keras.ops`` operations the core maths needs (``polyloss_core.series.ArrayOps``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from polyloss_core.series import ArrayOps


class KerasOps(ArrayOps):
    """``where``, ``sigmoid`` and ``tiny`` through ``keras.ops``, so they run on every Keras backend."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return ops.where(condition, a, b)

    def sigmoid(self, x: Any) -> Any:
        return ops.sigmoid(x)

    def tiny(self, x: Any) -> float:
        return float(np.finfo(np.dtype(keras.backend.standardize_dtype(x.dtype))).tiny)


OPS = KerasOps()
