"""PyTorch as a matrix backend, through the public functions and modules of ``polyloss_torch``.

The matrix describes inputs in NumPy layout with the classes on ``axis``;
torch wants them on dimension 1 (dimension 0 when unbatched), so the logits
(and floating labels) are moved there and per-element results moved back.
Output dtype (the adapter's rule, as under ``torch.autocast``): float32 for
float16 / bfloat16 inputs, the input's dtype otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
import torch

from polyloss_core import PolySpec
from polyloss_torch import (
    LinearPoly1CrossEntropyLoss,
    LinearPolyLoss,
    Poly1CrossEntropyLoss,
    Poly1FocalLoss,
    PolyLoss,
    _autograd,
    _impl,
    linear_poly1_cross_entropy,
    linear_poly_loss,
    poly1_cross_entropy,
    poly1_focal_loss,
    poly_loss,
)

from . import (
    DENSE_SIGMOID_LABELS,
    HALF,
    SOFTMAX_LABELS,
    EntryPoint,
    any_spec,
    epsilon_of,
    poly1_only,
    spec_entry_points,
)

_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _torch_dim(ndim: int) -> int:
    return 0 if ndim == 1 else 1


def _in_torch_layout(fn: Callable[[Any, Any, Any], Any]) -> Callable[[Any, Any, Any, str], Any]:
    """``fn(input, target, case)`` on torch's layout, called with the matrix's layout."""

    def call(logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        ndim = logits.dim()
        src, dim = case.axis % ndim, _torch_dim(ndim)
        z = logits.movedim(src, dim)
        y = labels.movedim(src, dim) if labels.is_floating_point() else labels
        out = fn(z, y, case)
        return out.movedim(dim, src) if case.family == "sigmoid" else out

    return call


def _as_linear_head(fn: Callable[[Any, Any, Any, Any], Any]) -> Callable[[Any, Any, Any, str], Any]:
    """A fused head ``fn(hidden, weight, target, case)`` called with the case's logits as ``hidden`` and ``weight = I``.

    ``hidden @ I.T`` is the logits exactly (in every dtype), so the fused head's value and its
    gradient with respect to ``hidden`` are compared with the reference like any other entry point.
    """

    def call(logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        z = logits.movedim(case.axis % logits.dim(), -1)
        num_classes = z.shape[-1]
        eye = torch.eye(num_classes, dtype=z.dtype)
        return fn(z.reshape(-1, num_classes), eye, labels.reshape(-1), case).reshape(labels.shape)

    return call


def _weight(spec: PolySpec, like: Any) -> Any:
    """A per-class ``alpha`` as torch's ``weight`` tensor (the input's dtype, as with ``F.cross_entropy``)."""
    return torch.tensor(spec.alpha, dtype=like.dtype) if isinstance(spec.alpha, tuple) else None


def _ce_kwargs(z: Any, case: Any) -> dict[str, Any]:
    spec = case.spec
    return {
        "epsilon": epsilon_of(spec),
        "weight": _weight(spec, z),
        "reduction": "none",
        "label_smoothing": spec.label_smoothing,
    }


def _focal_kwargs(case: Any) -> dict[str, Any]:
    spec = case.spec
    return {"epsilon": epsilon_of(spec), "alpha": spec.alpha, "gamma": spec.gamma, "reduction": "none"}


_POLY1_CE = poly1_only(alpha=("none", "vector"))
_POLY1_FOCAL = poly1_only(focal=True, alpha=("none", "scalar"), smoothing=False)


def _large_routes(fn: Callable[[Any, Any, Any, str], Any]) -> Callable[[Any, Any, Any, str], Any]:
    """``fn`` with the routes the adapter takes from 32 768 logits on, at the matrix's small shapes.

    Below that size eager calls take the plain composition; above it they take the autograd
    Functions (``TargetCrossEntropy``, ``DensePoly1``) and, for one-hot float rows on CPU, the
    class-index path. The size gate is lowered to 0 and ``DensePoly1``'s blocks to one row, so
    those routes join the matrix too (every spec, label kind, layout, dtype and the extremes).
    """

    def call(logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        with mock.patch.object(_impl, "_SMALL", 0), mock.patch.object(_autograd, "_BLOCK_BYTES", 1):
            return fn(logits, labels, case, dtype)

    return call


def _entry_points() -> tuple[EntryPoint, ...]:
    poly = _in_torch_layout(lambda z, y, c: poly_loss(z, y, c.spec, family=c.family, reduction="none"))
    entries = spec_entry_points(
        poly, _in_torch_layout(lambda z, y, c: PolyLoss(c.spec, family=c.family, reduction="none")(z, y))
    )
    large = (
        EntryPoint("poly_loss[large-input routes]", "softmax", SOFTMAX_LABELS, any_spec, _large_routes(poly)),
        EntryPoint(
            "poly1_cross_entropy[large-input routes]",
            "softmax",
            SOFTMAX_LABELS,
            _POLY1_CE,
            _large_routes(_in_torch_layout(lambda z, y, c: poly1_cross_entropy(z, y, **_ce_kwargs(z, c)))),
        ),
    )
    linear_kwargs = lambda c: {"epsilon": epsilon_of(c.spec), "label_smoothing": c.spec.label_smoothing}  # noqa: E731
    return (
        *entries,
        *large,
        EntryPoint(
            "linear_poly1_cross_entropy",
            "softmax",
            frozenset({"int"}),
            poly1_only(),
            _as_linear_head(
                lambda h, w, y, c: linear_poly1_cross_entropy(h, w, y, reduction="none", **linear_kwargs(c))
            ),
        ),
        EntryPoint(
            "LinearPoly1CrossEntropyLoss",
            "softmax",
            frozenset({"int"}),
            poly1_only(),
            _as_linear_head(
                lambda h, w, y, c: LinearPoly1CrossEntropyLoss(reduction="none", **linear_kwargs(c))(h, w, y)
            ),
            is_class=True,
        ),
        EntryPoint(
            "linear_poly_loss",
            "softmax",
            frozenset({"int"}),
            any_spec,
            _as_linear_head(lambda h, w, y, c: linear_poly_loss(h, w, y, c.spec, reduction="none")),
        ),
        EntryPoint(
            "LinearPolyLoss",
            "softmax",
            frozenset({"int"}),
            any_spec,
            _as_linear_head(lambda h, w, y, c: LinearPolyLoss(c.spec, reduction="none")(h, w, y)),
            is_class=True,
        ),
        EntryPoint(
            "poly1_cross_entropy",
            "softmax",
            SOFTMAX_LABELS,
            _POLY1_CE,
            _in_torch_layout(lambda z, y, c: poly1_cross_entropy(z, y, **_ce_kwargs(z, c))),
        ),
        EntryPoint(
            "Poly1CrossEntropyLoss",
            "softmax",
            SOFTMAX_LABELS,
            _POLY1_CE,
            _in_torch_layout(lambda z, y, c: Poly1CrossEntropyLoss(**_ce_kwargs(z, c))(z, y)),
            is_class=True,
        ),
        EntryPoint(
            "poly1_focal_loss",
            "sigmoid",
            DENSE_SIGMOID_LABELS,
            _POLY1_FOCAL,
            _in_torch_layout(lambda z, y, c: poly1_focal_loss(z, y, **_focal_kwargs(c))),
        ),
        EntryPoint(
            "Poly1FocalLoss",
            "sigmoid",
            DENSE_SIGMOID_LABELS,
            _POLY1_FOCAL,
            _in_torch_layout(lambda z, y, c: Poly1FocalLoss(**_focal_kwargs(c))(z, y)),
            is_class=True,
        ),
    )


class TorchBackend:
    name = "torch"
    dtypes = ("float64", "float32", "float16", "bfloat16")
    entry_points = _entry_points()

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

    def dtype_name(self, value: Any) -> str:
        return str(value.dtype).removeprefix("torch.")

    def output_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return "float32" if dtype in HALF else dtype

    def tolerance_dtype(self, entry: EntryPoint, dtype: str) -> str:
        return dtype

    def call(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        return entry.call(logits, labels, case, dtype)

    def grad_of(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        leaf = logits.detach().clone().requires_grad_(True)
        entry.call(leaf, labels, case, dtype).sum().backward()
        return leaf.grad

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        ndim = logits.dim()
        src, dim = axis % ndim, _torch_dim(ndim)
        z = logits.movedim(src, dim)
        y = labels.movedim(src, dim) if labels.is_floating_point() else labels
        out = poly_loss(z, y, spec, family=family, reduction="none")
        return out.movedim(dim, src) if family == "sigmoid" else out

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        leaf = logits.detach().clone().requires_grad_(True)
        self.loss(family, leaf, labels, spec, axis=axis).sum().backward()
        return leaf.grad


ADAPTER = TorchBackend()
