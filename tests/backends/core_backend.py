"""The NumPy reference as a matrix backend (float64 only); its one entry point is ``reference``."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyloss_core import PolySpec, reference

from . import SIGMOID_LABELS, SOFTMAX_LABELS, EntryPoint, any_spec


def _reference(logits: Any, labels: Any, case: Any, dtype: str) -> Any:
    fn = reference.softmax_poly_loss if case.family == "softmax" else reference.sigmoid_poly_loss
    return fn(logits, labels, case.spec, axis=case.axis)


class CoreBackend:
    name = "core"
    dtypes = ("float64",)
    entry_points = (
        EntryPoint("reference", "softmax", SOFTMAX_LABELS, any_spec, _reference),
        EntryPoint("reference", "sigmoid", SIGMOID_LABELS, any_spec, _reference),
    )

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        return np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def dtype_name(self, value: Any) -> str:
        return str(np.asarray(value).dtype)

    def output_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return "float64"

    def tolerance_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return dtype

    def call(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        return entry.call(logits, labels, case, dtype)

    def grad_of(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        return self.grad(case.family, logits, labels, case.spec, axis=case.axis)

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        if family == "softmax":
            return reference.softmax_poly_loss(logits, labels, spec, axis=axis)
        return reference.sigmoid_poly_loss(logits, labels, spec, axis=axis)

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        if family == "softmax":
            return reference.softmax_poly_loss_grad(logits, labels, spec, axis=axis)
        return reference.sigmoid_poly_loss_grad(logits, labels, spec, axis=axis)


ADAPTER = CoreBackend()
