"""One small interface that every backend implements for the shared test matrix.

A backend turns NumPy arrays into its own arrays, computes the per-example loss
and the gradient of its sum through the adapter's public functions, and turns
results back into NumPy. Tests choose backends by parameter (see ``conftest``),
never by copying a test per framework.

Each backend also declares its public *entry points* (every function and class
of the adapter): which cases of the parity matrix each one can express (family,
label kinds, specs) and how a case maps onto its arguments. The parity matrix
runs every (entry point, case, dtype) an entry point can express.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from polyloss_core import PolySpec

SOFTMAX_LABELS = frozenset({"int", "prob", "prob-unnorm", "onehot", "zero-rows"})
DENSE_SOFTMAX_LABELS = SOFTMAX_LABELS - {"int"}
SIGMOID_LABELS = frozenset({"binary", "soft", "int"})
DENSE_SIGMOID_LABELS = SIGMOID_LABELS - {"int"}
HALF = ("float16", "bfloat16")


@dataclass(frozen=True)
class EntryPoint:
    """One public function or class of an adapter, as the matrix calls it.

    ``call(logits, labels, case, dtype)`` takes the backend's arrays in the
    matrix's layout (classes on ``case.axis``) and returns the unreduced loss:
    per example (softmax) or per element (sigmoid), or per element averaged over
    ``case.axis`` where ``mean_over_axis`` (Keras' binary losses).
    """

    name: str
    family: str
    label_kinds: frozenset[str]
    expresses: Callable[[PolySpec], bool]
    call: Callable[[Any, Any, Any, str], Any]
    is_class: bool = False
    mean_over_axis: bool = False
    min_classes: int = 1

    def accepts(self, case: Any) -> bool:
        return (
            case.family == self.family
            and case.labels in self.label_kinds
            and case.shape[case.axis] >= self.min_classes
            and self.expresses(case.spec)
        )


def any_spec(spec: PolySpec) -> bool:
    return True


def spec_entry_points(
    function: Callable[[Any, Any, Any, str], Any],
    cls: Callable[[Any, Any, Any, str], Any],
    softmax_labels: frozenset[str] = SOFTMAX_LABELS,
    *,
    class_averages_sigmoid: bool = False,
    class_min_classes: int = 1,
) -> tuple[EntryPoint, ...]:
    """``poly_loss`` and ``PolyLoss`` (any spec) in both families, from their two calls."""
    return tuple(
        entry
        for family, labels in (("softmax", softmax_labels), ("sigmoid", SIGMOID_LABELS))
        for entry in (
            EntryPoint("poly_loss", family, labels, any_spec, function),
            EntryPoint(
                "PolyLoss",
                family,
                labels,
                any_spec,
                cls,
                is_class=True,
                mean_over_axis=class_averages_sigmoid and family == "sigmoid",
                min_classes=class_min_classes,
            ),
        )
    )


def poly1_only(
    *, focal: bool = False, alpha: Collection[str] = ("none",), smoothing: bool = True
) -> Callable[[PolySpec], bool]:
    """The specs a named Poly-1 entry point expresses: at most one epsilon (none = epsilon 0).

    ``focal``: any ``gamma`` (else only 0); ``alpha``: the kinds of ``spec.alpha``
    it takes (``"none"``, ``"scalar"``, ``"vector"``); ``smoothing``: whether it
    has a ``label_smoothing`` argument.
    """

    def expresses(spec: PolySpec) -> bool:
        kind = "none" if spec.alpha is None else "vector" if isinstance(spec.alpha, tuple) else "scalar"
        return (
            len(spec.epsilons) <= 1
            and (focal or spec.gamma == 0.0)
            and kind in alpha
            and (smoothing or spec.label_smoothing == 0.0)
        )

    return expresses


def epsilon_of(spec: PolySpec) -> float:
    """The ``epsilon`` argument of a named Poly-1 entry point for ``spec`` (0 for CE / focal)."""
    return spec.epsilons[0] if spec.epsilons else 0.0


class Backend(enum.Enum):
    """The backends the matrix knows, with the module that implements each."""

    CORE = "core"
    TORCH = "torch"
    KERAS = "keras"
    JAX = "jax"

    @property
    def module(self) -> str:
        return f"tests.backends.{self.value}_backend"

    @property
    def requires(self) -> str:
        """The import that must succeed for the backend to be available."""
        return {"core": "numpy", "torch": "torch", "keras": "keras", "jax": "jax"}[self.value]


class BackendAdapter(Protocol):
    """What a backend provides to the matrix."""

    name: str
    #: dtype names ("float64", "float32", "float16", "bfloat16") the backend runs.
    dtypes: tuple[str, ...]

    def to_native(self, array: np.ndarray, dtype: str | None = None) -> Any:
        """``array`` as the backend's array; ``dtype=None`` keeps integer labels integer."""

    def to_numpy(self, value: Any) -> np.ndarray:
        """A backend array as a float64 (or integer) NumPy array."""

    def loss(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        """Unreduced loss through the adapter's public ``poly_loss``."""

    def grad(self, family: str, logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1) -> Any:
        """Gradient of ``loss(...).sum()`` with respect to ``logits``."""

    #: every public function and class of the adapter.
    entry_points: tuple[EntryPoint, ...]

    def tolerance_dtype(self, entry: EntryPoint, dtype: str) -> str:
        """The dtype whose tolerances apply to ``entry`` on ``dtype`` inputs (``dtype``, unless the framework rounds)."""

    def call(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        """The entry point's unreduced loss (``entry.call`` in the backend's context, e.g. JAX's x64 mode)."""

    def grad_of(self, entry: EntryPoint, logits: Any, labels: Any, case: Any, dtype: str) -> Any:
        """Gradient of ``entry.call(...).sum()`` with respect to ``logits``."""

    def output_dtype(self, entry: EntryPoint, dtype: str) -> str:
        """The dtype the entry point returns for inputs of ``dtype`` (the adapter's documented rule)."""


def _available(backend: Backend) -> bool:
    # find_spec, not an import: importing TensorFlow before torch's compiler stack (triton) makes
    # the two LLVM copies abort the process, so backends are imported only by ``load``, torch first.
    return importlib.util.find_spec(backend.requires) is not None


def selected_backends() -> list[Backend]:
    """Backends named by ``POLYLOSS_BACKENDS`` (comma list, or ``all``); default: every installed one.

    A backend named explicitly but not installed is an error, not a skip.
    """
    raw = os.environ.get("POLYLOSS_BACKENDS", "").strip()
    if not raw:
        return [b for b in Backend if _available(b)]
    names = [b.value for b in Backend] if raw == "all" else [n.strip() for n in raw.split(",") if n.strip()]
    chosen = []
    for name in names:
        try:
            backend = Backend(name)
        except ValueError:
            raise ValueError(
                f"POLYLOSS_BACKENDS names unknown backend {name!r}; known: {[b.value for b in Backend]}"
            ) from None
        if not _available(backend):
            raise RuntimeError(f"POLYLOSS_BACKENDS selects {name!r} but {backend.requires!r} is not installed")
        chosen.append(backend)
    return chosen


_LOADED: dict[Backend, BackendAdapter] = {}


def load(backend: Backend) -> BackendAdapter:
    """The adapter object of ``backend`` (imported once)."""
    if backend not in _LOADED:
        _LOADED[backend] = importlib.import_module(backend.module).ADAPTER
    return _LOADED[backend]
