"""The NumPy reference as a matrix backend (float64 only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyloss_core import PolySpec, reference


class CoreBackend:
    name = "core"
    dtypes = ("float64",)

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        return np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        if family == "softmax":
            return reference.softmax_poly_loss(logits, labels, spec, axis=axis)
        return reference.sigmoid_poly_loss(logits, labels, spec, axis=axis)

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        if family == "softmax":
            return reference.softmax_poly_loss_grad(logits, labels, spec, axis=axis)
        return reference.sigmoid_poly_loss_grad(logits, labels, spec, axis=axis)


ADAPTER = CoreBackend()
