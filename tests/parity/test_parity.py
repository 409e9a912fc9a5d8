"""The shared parity matrix: every public entry point of every selected backend against the float64 reference.

Parametrized by ``(backend, entry point, case, dtype)``: each backend module
(``tests/backends``) declares its entry points and which cases each can
express; ``cases.py`` holds the cases, the pruning and the tolerances. One test
checks the value, the output dtype and the gradient of the sum, so nothing here
is skipped and no per-framework test needs to re-check a value.
"""

from __future__ import annotations

import numpy as np
import pytest

from polyloss_core import PolySpec
from tests import paper_formulas
from tests.backends import Backend, EntryPoint, load
from tests.conftest import SELECTED

from .cases import CASES, TOLERANCES, Case, native_inputs, reference_values


def _params() -> list:
    params = []
    for backend in SELECTED:
        adapter = load(backend)
        for entry in adapter.entry_points:
            for case in CASES:
                if not entry.accepts(case) or (entry.is_class and case.layout != "NC"):
                    continue
                for dtype in adapter.dtypes:
                    params.append(
                        pytest.param(backend, entry, case, dtype, id=f"{backend.value}-{entry.name}-{case.id}-{dtype}")
                    )
    return params


PARAMS = _params()


def _expected(backend: Backend, entry: EntryPoint, case: Case, logits: np.ndarray, labels: np.ndarray):
    """The reference for adapters; for the reference itself, the paper's formulas written independently."""
    if backend is Backend.CORE:
        fn = paper_formulas.softmax_loss if case.family == "softmax" else paper_formulas.sigmoid_loss
        return (
            fn(logits, labels, case.spec, axis=case.axis),
            paper_formulas.complex_step_grad(fn, logits, labels, case.spec, axis=case.axis),
        )
    return reference_values(case, logits, labels, entry)


@pytest.mark.parametrize(("backend_id", "entry", "case", "dtype"), PARAMS)
def test_entry_point_matches_reference(backend_id, entry: EntryPoint, case: Case, dtype: str) -> None:
    """Value, output dtype and gradient of the sum against the float64 reference."""
    adapter = load(backend_id)
    logits, labels, exact_logits, exact_labels = native_inputs(adapter, *case.inputs(), dtype)
    expected, expected_grad = _expected(backend_id, entry, case, exact_logits, exact_labels)
    out = adapter.call(entry, logits, labels, case, dtype)
    assert adapter.dtype_name(out) == adapter.output_dtype(entry, dtype)
    got = adapter.to_numpy(out)
    assert got.shape == expected.shape
    tolerances = TOLERANCES[adapter.tolerance_dtype(entry, dtype)]
    rtol, atol = tolerances["loss"]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg="loss")
    grad = adapter.grad_of(entry, logits, labels, case, dtype)
    assert adapter.dtype_name(grad) == dtype
    got_grad = adapter.to_numpy(grad)
    assert got_grad.shape == expected_grad.shape
    rtol, atol = tolerances["grad"]
    np.testing.assert_allclose(got_grad, expected_grad, rtol=rtol, atol=atol, err_msg="gradient")


EXTREME = {"float64": 1e4, "float32": 1e4, "float16": 6e4, "bfloat16": 1e4}
EXTREME_SPECS = {
    "poly1": PolySpec.poly1(1.0),
    "poly1-focal-gamma-half": PolySpec.poly1_focal(1.0, 0.5),
    "poly3-focal": PolySpec(epsilons=(1.0, -0.25, 0.5), gamma=2.0),
}
# Rows: confident right, confident wrong, a tie, confident right on another class.
_EXTREME_CLASSES = np.array([0, 0, 2, 2])
_EXTREME_PATTERN = np.array([[1.0, 0.0, -1.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-1.0, -1.0, 1.0]])
EXTREME_LABELS = {
    "softmax": {
        "int": _EXTREME_CLASSES,
        "onehot": np.eye(3)[_EXTREME_CLASSES],
        # Soft targets peaked on the confident class, and an unnormalized row.
        "prob": np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.0, 0.3, 1.0]]),
    },
    "sigmoid": {"binary": np.eye(3)[_EXTREME_CLASSES]},
}


def _extreme_params() -> list:
    params = []
    for backend in SELECTED:
        if backend is Backend.CORE:
            continue  # the reference at extreme logits is checked against closed forms in tests/core
        adapter = load(backend)
        for entry in adapter.entry_points:
            if entry.is_class:
                continue
            for (name, spec), kind in (
                (item, kind) for item in EXTREME_SPECS.items() for kind in EXTREME_LABELS[entry.family]
            ):
                case = Case(entry.family, name, spec, kind, "extreme", (4, 3), -1)
                if not entry.accepts(case):
                    continue
                for dtype in adapter.dtypes:
                    params.append(
                        pytest.param(backend, entry, case, dtype, id=f"{backend.value}-{entry.name}-{case.id}-{dtype}")
                    )
    return params


EXTREME_PARAMS = _extreme_params()

if EXTREME_PARAMS:  # only the reference selected: its extremes are checked in tests/core

    @pytest.mark.parametrize(("backend_id", "entry", "case", "dtype"), EXTREME_PARAMS)
    def test_extreme_logits_finite_and_correct(backend_id, entry: EntryPoint, case: Case, dtype: str) -> None:
        """Logits of +-1e4 (+-6e4 in fp16), hard and dense targets: finite loss and gradient equal to the reference."""
        adapter = load(backend_id)
        big = EXTREME[dtype]
        labels = EXTREME_LABELS[case.family][case.labels]
        logits, native_labels, exact, exact_labels = native_inputs(adapter, big * _EXTREME_PATTERN, labels, dtype)
        loss = adapter.to_numpy(adapter.call(entry, logits, native_labels, case, dtype))
        grad = adapter.to_numpy(adapter.grad_of(entry, logits, native_labels, case, dtype))
        assert np.all(np.isfinite(loss)), loss
        assert np.all(np.isfinite(grad)), grad
        want, want_grad = reference_values(case, exact, exact_labels, entry)
        tolerances = TOLERANCES[adapter.tolerance_dtype(entry, dtype)]
        rtol, atol = tolerances["loss"]
        np.testing.assert_allclose(loss, want, rtol=rtol, atol=max(atol, 1e-6 * big * (dtype != "float64")))
        rtol, atol = tolerances["grad"]
        np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=atol)


def _label_check_params() -> list:
    params = []
    for backend in SELECTED:
        adapter = load(backend)
        for entry in adapter.entry_points:
            case = Case("softmax", "poly1", PolySpec.poly1(), "int", "NC", (3, 5), -1)
            if entry.accepts(case):
                for bad in (-1, 5):
                    params.append(pytest.param(backend, entry, case, bad, id=f"{backend.value}-{entry.name}-{bad}"))
    return params


@pytest.mark.parametrize(("backend_id", "entry", "case", "bad_label"), _label_check_params())
def test_out_of_range_labels_raise(backend_id, entry: EntryPoint, case: Case, bad_label: int) -> None:
    """Eagerly, an integer label outside [0, C) raises ValueError naming it; never a number."""
    adapter = load(backend_id)
    dtype = adapter.dtypes[0]
    logits = adapter.to_native(np.zeros((3, 5)), dtype)
    labels = adapter.to_native(np.array([0, bad_label, 1]), None)
    with pytest.raises(ValueError, match=str(bad_label)):
        adapter.to_numpy(adapter.call(entry, logits, labels, case, dtype))
