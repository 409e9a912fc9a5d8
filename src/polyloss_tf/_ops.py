"""The few ``keras.ops`` operations the core maths needs, as a ``polyloss_core.series.ArrayOps``.

They go through ``keras.ops``, so they run on every Keras backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from polyloss_core.series import ArrayOps

OPS = ArrayOps(
    where=ops.where,
    tiny=lambda x: float(np.finfo(np.dtype(keras.backend.standardize_dtype(x.dtype))).tiny),
    sigmoid=ops.sigmoid,
)
