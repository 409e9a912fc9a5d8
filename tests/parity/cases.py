"""The shared parity table: spec x label kind x shape/axis, with tolerances in one place.

Every backend runs every case that each of its entry points can express, in
every dtype it declares, through ``test_parity.py``. Inputs are generated from
fixed seeds; the reference is evaluated on the inputs *as the backend holds
them* (rounded to its dtype), so the tolerances below only cover the backend's
arithmetic.

Label kinds. Softmax: ``int`` (class indices), ``prob`` (normalized soft
targets), ``prob-unnorm`` (soft rows summing to 0.7 or 1.3: mixup / distillation
targets that were never renormalized; SPEC's ``sum_c w_c q_c l(p_c)`` is defined
for them and every framework's CE accepts them), ``onehot`` (one-hot floats, as
Keras users pass them: the fast paths recognise them), ``zero-rows`` (soft rows
where some rows are all zero: padding, masked examples). Sigmoid: ``binary``
(0/1 floats), ``soft`` (targets in [0, 1]), ``int`` (class indices, one-hot
along the class axis; ``poly_loss`` only).

Pruning (the full product spec x label kind x layout x dtype x entry point
would be ~5x larger and take minutes per backend without testing more code):

* Layouts other than ``NC`` exercise the class-axis handling and the wide-class
  paths, which do not depend on the epsilons: they run only the
  ``LAYOUT_SPECS`` (CE, Poly-1, Poly-1 focal, smoothing, class weights) with
  ``int``, ``prob`` and ``onehot`` labels. ``NC`` runs every spec with every label kind.
* Classes only hold configuration and call the same validation and maths as
  their function (SPEC section 5 / the adapter layout), so in
  ``test_parity.py`` they run the ``NC`` layout only, in every dtype (the
  output-dtype rule can differ: Keras' ``Loss`` casts to its own ``dtype``).
* Extreme logits (``test_extreme_logits...``) run through every *function*
  entry point with three specs, not through the classes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyloss_core import PolySpec, reference

# (rtol, atol) for the loss and for the gradient, per input dtype.
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {"loss": (1e-10, 1e-12), "grad": (1e-9, 1e-11)},
    "float32": {"loss": (2e-5, 2e-6), "grad": (1e-4, 2e-6)},
    "float16": {"loss": (4e-3, 2e-3), "grad": (2e-2, 2e-3)},
    "bfloat16": {"loss": (3e-2, 1e-2), "grad": (8e-2, 1e-2)},
}
DTYPES = tuple(TOLERANCES)

SOFTMAX_SPECS: dict[str, PolySpec] = {
    "ce": PolySpec.cross_entropy(),
    "poly1": PolySpec.poly1(1.0),
    "poly1-neg": PolySpec.poly1(-1.0),
    "poly3": PolySpec.poly_n(2.0, -0.2, 0.1),
    "drop2": PolySpec.drop(2),
    "focal": PolySpec.focal(2.0),
    "poly1-focal": PolySpec.poly1_focal(1.0, 1.5),
    "poly1-smooth": PolySpec.poly1(2.0, label_smoothing=0.1),
    "poly1-classweight": PolySpec(epsilons=(1.0,), alpha=(0.5, 1.0, 2.0, 0.25, 1.5)),
    "poly1-focal-scalar-alpha-smooth": PolySpec(epsilons=(0.5,), gamma=2.0, alpha=0.25, label_smoothing=0.05),
}
SIGMOID_SPECS: dict[str, PolySpec] = {
    "bce": PolySpec.cross_entropy(),
    "poly1": PolySpec.poly1(1.0),
    "focal": PolySpec.focal(2.0, 0.25),
    "poly1-focal": PolySpec.poly1_focal(1.0, 2.0, 0.25),
    "poly1-focal-neg": PolySpec.poly1_focal(-1.0, 2.0),
    "poly2-focal-gamma-half": PolySpec(epsilons=(1.0, 0.5), gamma=0.5, alpha=0.75),
    "poly1-smooth": PolySpec.poly1(1.0, label_smoothing=0.1),
}
LAYOUT_SPECS = ("ce", "poly1", "poly1-focal", "poly1-smooth", "poly1-classweight")

SOFTMAX_LABEL_KINDS = ("int", "prob", "prob-unnorm", "onehot", "zero-rows")
LAYOUT_LABEL_KINDS = ("int", "prob", "onehot")
SIGMOID_LABEL_KINDS = ("binary", "soft", "int")

# (shape, class axis) pairs. Most have five classes, the length of the per-class
# alpha above; "NC-wide" reaches the adapters' paths for many classes.
SOFTMAX_LAYOUTS = {
    "NC": ((6, 5), -1),
    "C": ((5,), -1),
    "NCHW": ((2, 5, 3, 2), 1),
    "NC-wide": ((4, 20), -1),
}
SIGMOID_LAYOUTS = {
    "NC": ((6, 5), -1),
    "NCHW": ((2, 5, 3, 2), 1),
}


@dataclass(frozen=True)
class Case:
    family: str  # "softmax" or "sigmoid"
    spec_name: str
    spec: PolySpec
    labels: str  # one of the label kinds above
    layout: str
    shape: tuple[int, ...]
    axis: int

    @property
    def id(self) -> str:
        return f"{self.family}-{self.spec_name}-{self.labels}-{self.layout}"

    def inputs(self, scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """Float64 logits and labels (int64 or float64) from a seed fixed by the case id."""
        rng = np.random.default_rng(_seed(self.id))
        logits = rng.normal(scale=scale, size=self.shape)
        return logits, make_labels(rng, self.labels, self.shape, self.axis, self.family)


def make_labels(rng: np.random.Generator, kind: str, shape: tuple[int, ...], axis: int, family: str) -> np.ndarray:
    """Labels of ``kind`` for logits of ``shape`` with the classes on ``axis``."""
    ax = axis % len(shape)
    classes = shape[ax]
    label_shape = shape[:ax] + shape[ax + 1 :]
    if kind == "int":
        return rng.integers(0, classes, size=label_shape).astype(np.int64)
    if kind == "onehot":
        return np.moveaxis(np.eye(classes)[rng.integers(0, classes, size=label_shape)], -1, ax)
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    if kind == "soft":
        return rng.uniform(0.0, 1.0, size=shape)
    raw = rng.uniform(0.05, 1.0, size=shape)
    q = raw / raw.sum(axis=ax, keepdims=True)
    if kind == "prob":
        return q
    rows = np.moveaxis(q, ax, -1)
    if kind == "prob-unnorm":
        # Row sums alternate 0.7 and 1.3.
        sums = np.where(np.arange(rows[..., 0].size).reshape(rows.shape[:-1]) % 2 == 0, 0.7, 1.3)
        return np.moveaxis(rows * sums[..., None], -1, ax)
    if kind == "zero-rows":
        # Every other row all zero (for a single row: that row).
        keep = np.arange(rows[..., 0].size).reshape(rows.shape[:-1]) % 2 == 1
        return np.moveaxis(rows * keep[..., None], -1, ax)
    raise ValueError(f"unknown label kind {kind!r} for the {family} family")


def _seed(text: str) -> int:
    # A stable seed (Python's str hash is salted per process).
    return int.from_bytes(text.encode(), "little") % (2**32 - 1)


def _fits(spec: PolySpec, shape: tuple[int, ...], axis: int) -> bool:
    # One alpha per class: only where the class count matches.
    return not isinstance(spec.alpha, tuple) or len(spec.alpha) == shape[axis]


def all_cases() -> list[Case]:
    cases = []
    for layout, (shape, axis) in SOFTMAX_LAYOUTS.items():
        kinds = SOFTMAX_LABEL_KINDS if layout == "NC" else LAYOUT_LABEL_KINDS
        names = list(SOFTMAX_SPECS) if layout == "NC" else LAYOUT_SPECS
        for name, labels in itertools.product(names, kinds):
            spec = SOFTMAX_SPECS[name]
            if _fits(spec, shape, axis):
                cases.append(Case("softmax", name, spec, labels, layout, shape, axis))
    for (name, spec), labels, (layout, (shape, axis)) in itertools.product(
        SIGMOID_SPECS.items(), SIGMOID_LABEL_KINDS, SIGMOID_LAYOUTS.items()
    ):
        if labels == "int" and layout != "NC":
            continue  # class indices for the sigmoid family only on the (N, C) layout
        cases.append(Case("sigmoid", name, spec, labels, layout, shape, axis))
    return cases


CASES = all_cases()


def native_inputs(adapter: Any, logits: np.ndarray, labels: np.ndarray, dtype: str) -> tuple[Any, ...]:
    """The backend's logits and labels, and the exact float64 / int64 values it holds (what the reference sees)."""
    native_logits = adapter.to_native(logits, dtype)
    integer = np.issubdtype(labels.dtype, np.integer)
    native_labels = adapter.to_native(labels, None if integer else dtype)
    exact_logits = adapter.to_numpy(native_logits).astype(np.float64)
    exact_labels = adapter.to_numpy(native_labels).astype(np.int64 if integer else np.float64)
    return native_logits, native_labels, exact_logits, exact_labels


def reference_values(case: Any, logits: np.ndarray, labels: np.ndarray, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    """The reference value and gradient of the sum, for what ``entry`` returns on ``case``."""
    if case.family == "softmax":
        value = reference.softmax_poly_loss(logits, labels, case.spec, axis=case.axis)
        grad = reference.softmax_poly_loss_grad(logits, labels, case.spec, axis=case.axis)
    else:
        value = reference.sigmoid_poly_loss(logits, labels, case.spec, axis=case.axis)
        grad = reference.sigmoid_poly_loss_grad(logits, labels, case.spec, axis=case.axis)
    if entry.mean_over_axis:
        return value.mean(axis=case.axis), grad / logits.shape[case.axis]
    return value, grad
