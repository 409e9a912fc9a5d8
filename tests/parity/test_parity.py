"""The shared parity matrix: every selected backend against the float64 reference.

Parametrized by ``(backend, case, dtype)`` from ``cases.py``; a backend only
receives the dtypes it declares, so nothing here is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

from polyloss_core import PolySpec, reference
from tests import paper_formulas
from tests.backends import Backend, load
from tests.conftest import SELECTED

from .cases import CASES, TOLERANCES, Case


def _params() -> list:
    params = []
    for backend in SELECTED:
        adapter = load(backend)
        for case in CASES:
            for dtype in adapter.dtypes:
                params.append(pytest.param(backend, case, dtype, id=f"{backend.value}-{case.id}-{dtype}"))
    return params


PARAMS = _params()


def _native_inputs(adapter, case: Case, dtype: str, scale: float = 3.0):
    logits, labels = case.inputs(scale)
    native_logits = adapter.to_native(logits, dtype)
    integer = np.issubdtype(labels.dtype, np.integer)
    native_labels = adapter.to_native(labels, None if integer else dtype)
    # The reference sees exactly what the backend holds.
    exact_logits = adapter.to_numpy(native_logits).astype(np.float64)
    exact_labels = adapter.to_numpy(native_labels)
    exact_labels = exact_labels.astype(np.int64 if integer else np.float64)
    return native_logits, native_labels, exact_logits, exact_labels


def _expected(backend: Backend, case: Case, logits: np.ndarray, labels: np.ndarray):
    """The reference for adapters; for the reference itself, the paper's formulas written independently."""
    if backend is Backend.CORE:
        fn = paper_formulas.softmax_loss if case.family == "softmax" else paper_formulas.sigmoid_loss
        return (
            fn(logits, labels, case.spec, axis=case.axis),
            paper_formulas.complex_step_grad(fn, logits, labels, case.spec, axis=case.axis),
        )
    if case.family == "softmax":
        return (
            reference.softmax_poly_loss(logits, labels, case.spec, axis=case.axis),
            reference.softmax_poly_loss_grad(logits, labels, case.spec, axis=case.axis),
        )
    return (
        reference.sigmoid_poly_loss(logits, labels, case.spec, axis=case.axis),
        reference.sigmoid_poly_loss_grad(logits, labels, case.spec, axis=case.axis),
    )


@pytest.mark.parametrize(("backend_id", "case", "dtype"), PARAMS)
def test_loss_matches_reference(backend_id, case: Case, dtype: str) -> None:
    adapter = load(backend_id)
    logits, labels, exact_logits, exact_labels = _native_inputs(adapter, case, dtype)
    expected, _ = _expected(backend_id, case, exact_logits, exact_labels)
    got = adapter.to_numpy(adapter.loss(case.family, logits, labels, case.spec, axis=case.axis))
    assert got.shape == expected.shape
    rtol, atol = TOLERANCES[dtype]["loss"]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("backend_id", "case", "dtype"), PARAMS)
def test_grad_matches_reference(backend_id, case: Case, dtype: str) -> None:
    adapter = load(backend_id)
    logits, labels, exact_logits, exact_labels = _native_inputs(adapter, case, dtype)
    _, expected = _expected(backend_id, case, exact_logits, exact_labels)
    got = adapter.to_numpy(adapter.grad(case.family, logits, labels, case.spec, axis=case.axis))
    assert got.shape == expected.shape
    rtol, atol = TOLERANCES[dtype]["grad"]
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


EXTREME = {"float64": 1e4, "float32": 1e4, "float16": 6e4, "bfloat16": 1e4}
EXTREME_SPECS = {
    "poly1": PolySpec.poly1(1.0),
    "poly1-focal-gamma-half": PolySpec.poly1_focal(1.0, 0.5),
    "poly3-focal": PolySpec(epsilons=(1.0, -0.25, 0.5), gamma=2.0),
}


def _extreme_params() -> list:
    params = []
    for backend in SELECTED:
        if backend is Backend.CORE:
            continue  # the reference at extreme logits is checked against closed forms in tests/core
        for dtype in load(backend).dtypes:
            for family in ("softmax", "sigmoid"):
                for name, spec in EXTREME_SPECS.items():
                    params.append(
                        pytest.param(backend, family, spec, dtype, id=f"{backend.value}-{family}-{name}-{dtype}")
                    )
    return params


EXTREME_PARAMS = _extreme_params()

if EXTREME_PARAMS:  # only the reference selected: its extremes are checked in tests/core

    @pytest.mark.parametrize(("backend_id", "family", "spec", "dtype"), EXTREME_PARAMS)
    def test_extreme_logits_finite_and_correct(backend_id, family: str, spec: PolySpec, dtype: str) -> None:
        """Logits of +-1e4 (+-6e4 in fp16): finite loss and gradient equal to the reference."""
        adapter = load(backend_id)
        big = EXTREME[dtype]
        logits = np.array([[big, 0.0, -big], [-big, big, 0.0], [0.0, 0.0, 0.0], [-big, -big, big]])
        labels = np.array([0, 0, 2, 2]) if family == "softmax" else np.eye(3)[[0, 0, 2, 2]]
        native_logits = adapter.to_native(logits, dtype)
        native_labels = adapter.to_native(labels, None if family == "softmax" else dtype)
        loss = adapter.to_numpy(adapter.loss(family, native_logits, native_labels, spec))
        grad = adapter.to_numpy(adapter.grad(family, native_logits, native_labels, spec))
        assert np.all(np.isfinite(loss)), loss
        assert np.all(np.isfinite(grad)), grad
        exact = adapter.to_numpy(native_logits).astype(np.float64)
        if family == "softmax":
            want, want_grad = (
                reference.softmax_poly_loss(exact, labels, spec),
                reference.softmax_poly_loss_grad(exact, labels, spec),
            )
        else:
            want, want_grad = (
                reference.sigmoid_poly_loss(exact, labels, spec),
                reference.sigmoid_poly_loss_grad(exact, labels, spec),
            )
        rtol, atol = TOLERANCES[dtype]["loss"]
        np.testing.assert_allclose(loss, want, rtol=rtol, atol=max(atol, 1e-6 * big * (dtype != "float64")))
        rtol, atol = TOLERANCES[dtype]["grad"]
        np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize("bad_label", [-1, 5])
def test_out_of_range_labels_raise(backend, bad_label: int) -> None:
    """Eagerly, an integer label outside [0, C) raises ValueError naming it; never a number."""
    logits = backend.to_native(np.zeros((3, 5)), backend.dtypes[0])
    labels = backend.to_native(np.array([0, bad_label, 1]), None)
    with pytest.raises(ValueError, match=str(bad_label)):
        backend.to_numpy(backend.loss("softmax", logits, labels, PolySpec.poly1()))
