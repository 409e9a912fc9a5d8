"""The few torch operations the core maths needs (``polyloss_core.series.ArrayOps``)."""

from __future__ import annotations

from typing import Any

import torch

from polyloss_core.series import ArrayOps


class TorchOps(ArrayOps):
    """``where``, ``sigmoid``, ``tiny`` and a fused ``a + alpha * b`` for torch tensors."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return torch.where(condition, a, b)

    def sigmoid(self, x: Any) -> Any:
        return torch.sigmoid(x)

    def tiny(self, x: Any) -> float:
        return float(torch.finfo(x.dtype).tiny)

    def add_scaled(self, a: Any, b: Any, alpha: Any) -> Any:
        # One multiply-add kernel (and one backward node) where alpha is a Python number.
        if isinstance(alpha, (int, float)):
            return torch.add(a, b, alpha=alpha)
        return a + alpha * b


OPS = TorchOps()
