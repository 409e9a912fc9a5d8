"""The shared parity table: spec x label kind x shape/axis x dtype, with tolerances in one place.

Every backend runs every case through the same two tests in ``test_parity.py``.
Inputs are generated from fixed seeds; the reference is evaluated on the
inputs *as the backend holds them* (rounded to its dtype), so the tolerances
below only cover the backend's arithmetic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from polyloss_core import PolySpec

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
    labels: str  # softmax: "int" | "prob"; sigmoid: "binary" | "soft" | "int"
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
        classes = self.shape[self.axis]
        label_shape = self.shape[: self.axis % len(self.shape)] + self.shape[self.axis % len(self.shape) + 1 :]
        if self.labels == "int":
            labels = rng.integers(0, classes, size=label_shape).astype(np.int64)
        elif self.labels == "prob":
            raw = rng.uniform(0.05, 1.0, size=self.shape)
            labels = raw / raw.sum(axis=self.axis, keepdims=True)
        elif self.labels == "binary":
            labels = rng.integers(0, 2, size=self.shape).astype(np.float64)
        elif self.labels == "soft":
            labels = rng.uniform(0.0, 1.0, size=self.shape)
        else:
            raise ValueError(self.labels)
        return logits, labels


def _seed(text: str) -> int:
    # A stable seed (Python's str hash is salted per process).
    return int.from_bytes(text.encode(), "little") % (2**32 - 1)


def all_cases() -> list[Case]:
    cases = []
    for (name, spec), labels, (layout, (shape, axis)) in itertools.product(
        SOFTMAX_SPECS.items(), ("int", "prob"), SOFTMAX_LAYOUTS.items()
    ):
        if isinstance(spec.alpha, tuple) and len(spec.alpha) != shape[axis]:
            continue  # one alpha per class: only where the class count matches
        cases.append(Case("softmax", name, spec, labels, layout, shape, axis))
    for (name, spec), labels, (layout, (shape, axis)) in itertools.product(
        SIGMOID_SPECS.items(), ("binary", "soft", "int"), SIGMOID_LAYOUTS.items()
    ):
        if labels == "int" and layout != "NC":
            continue  # class indices for the sigmoid family only on the (N, C) layout
        cases.append(Case("sigmoid", name, spec, labels, layout, shape, axis))
    return cases


CASES = all_cases()
