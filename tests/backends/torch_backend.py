"""PyTorch as a matrix backend, through the public ``polyloss_torch.poly_loss``.

The matrix describes inputs in NumPy layout with the classes on ``axis``;
torch wants them on dimension 1 (dimension 0 when unbatched), so the logits
(and floating labels) are moved there and per-element results moved back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polyloss_core import PolySpec
from polyloss_torch import poly_loss

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _torch_dim(ndim: int) -> int:
    return 0 if ndim == 1 else 1


class TorchBackend:
    name = "torch"
    dtypes = ("float64", "float32", "float16", "bfloat16")

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        array = np.asarray(array)
        if dtype is None:
            return torch.from_numpy(array.copy())
        return torch.from_numpy(array.astype(np.float64)).to(_DTYPES[dtype])

    def to_numpy(self, value: Any) -> np.ndarray:
        value = value.detach()
        if value.is_floating_point():
            return value.to(torch.float64).numpy()
        return value.numpy()

    def _to_torch_layout(self, logits: Any, labels: Any, axis: int) -> tuple[Any, Any, int]:
        ndim = logits.dim()
        src = axis % ndim
        dim = _torch_dim(ndim)
        logits = logits.movedim(src, dim)
        if labels.is_floating_point():
            labels = labels.movedim(src, dim)
        return logits, labels, src

    def _loss_torch_layout(self, family: str, logits: Any, labels: Any, spec: PolySpec) -> Any:
        return poly_loss(logits, labels, spec, family=family, reduction="none")

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        z, y, src = self._to_torch_layout(logits, labels, axis)
        out = self._loss_torch_layout(family, z, y, spec)
        if family == "sigmoid":
            out = out.movedim(_torch_dim(z.dim()), src)
        return out

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        leaf = logits.detach().clone().requires_grad_(True)
        self.loss(family, leaf, labels, spec, axis=axis).sum().backward()
        return leaf.grad


ADAPTER = TorchBackend()
