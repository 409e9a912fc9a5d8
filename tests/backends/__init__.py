"""One small interface that every backend implements for the shared test matrix.

A backend turns NumPy arrays into its own arrays, computes the per-example loss
and the gradient of its sum through the adapter's public functions, and turns
results back into NumPy. Tests choose backends by parameter (see ``conftest``),
never by copying a test per framework.
"""

from __future__ import annotations

import enum
import importlib
import os
from typing import Any, Protocol

import numpy as np

from polyloss_core import PolySpec


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


def _available(backend: Backend) -> bool:
    try:
        importlib.import_module(backend.requires)
    except ImportError:
        return False
    return True


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
