"""The few torch operations the core maths needs, as a ``polyloss_core.series.ArrayOps``."""

from __future__ import annotations

from typing import Any

import torch

from polyloss_core.series import ArrayOps


def _add_scaled(a: Any, b: Any, alpha: Any) -> Any:
    # One multiply-add kernel (and one backward node) where alpha is a Python number.
    return torch.add(a, b, alpha=alpha) if isinstance(alpha, (int, float)) else a + alpha * b


OPS = ArrayOps(
    where=torch.where,
    tiny=lambda x: float(torch.finfo(x.dtype).tiny),
    sigmoid=torch.sigmoid,
    add_scaled=_add_scaled,
    scaled_expm1=torch.nn.functional.elu,  # alpha expm1(x) for x <= 0, one kernel with the scale in its backward
)
