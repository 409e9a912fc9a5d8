"""Seeded differential fuzzing: every selected adapter against the float64 reference, on random inputs.

Each case is drawn from ``numpy.random.default_rng([seed, backend, index])``:
a random shape (empty batches, one class, many classes, extra spatial
dimensions), dtype, spec (Poly-1, Poly-N, drop-N, integer and fractional
gamma, alpha, label smoothing), label kind and entry point, plus per-framework
options (torch reductions, ``weight``, ``ignore_index``; Keras
``from_logits=False``) and bad inputs, each of which must raise a
``ValueError`` / ``TypeError`` naming the argument.

The run is bounded by time, not by a count: ``--fuzz-seconds`` per selected
framework backend (default 12, so one run over all three takes under a minute,
as do the per-backend CI sessions together) and ``--fuzz-seed`` (default fixed);
``nox -s fuzz`` runs 400 s per backend. A failure prints the seed and the case index, and
``--fuzz-seed=S --fuzz-start=K`` replays it first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from polyloss_core import PolySpec, reference
from tests.backends import Backend, load
from tests.conftest import SELECTED
from tests.parity.cases import TOLERANCES, make_labels, native_inputs, reference_values

ADAPTER_BACKENDS = [b for b in SELECTED if b is not Backend.CORE]


@dataclass(frozen=True)
class FuzzCase:
    family: str
    spec: PolySpec
    labels: str
    shape: tuple[int, ...]
    axis: int
    layout: str = "fuzz"

    @property
    def id(self) -> str:
        return f"{self.family}-{self.labels}-{self.shape}-axis{self.axis}-{self.spec}"


# --------------------------------------------------------------------------- random draws
def _random_spec(rng: np.random.Generator, family: str, classes: int) -> PolySpec:
    plain = rng.random()
    if plain < 0.3:  # what the named Poly-1 entry points express: one epsilon, nothing else
        return PolySpec.poly1(round(float(rng.uniform(-1.0, 3.0)), 3))
    if plain < 0.4:
        alpha = round(float(rng.uniform(0, 1)), 3) if rng.random() < 0.5 else None
        return PolySpec.poly1_focal(round(float(rng.uniform(-1.0, 3.0)), 3), float(rng.choice([0.5, 1.5, 2.0])), alpha)
    kind = rng.choice(["ce", "poly1", "poly1", "poly_n", "drop"])
    gamma = float(rng.choice([0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.7, round(float(rng.uniform(0, 3)), 3)]))
    if kind == "ce":
        epsilons: tuple[float, ...] = ()
    elif kind == "poly1":
        epsilons = (round(float(rng.uniform(-1.0, 3.0)), 3),)
    elif kind == "drop":
        epsilons = PolySpec.drop(int(rng.integers(1, 5))).epsilons
    else:
        n = int(rng.integers(2, 5))
        epsilons = (round(float(rng.uniform(-0.5, 3.0)), 3), *np.round(rng.uniform(-0.1, 0.5, n - 1), 3).tolist())
    alpha: Any = None
    draw = rng.random()
    if family == "sigmoid" and draw < 0.5:
        alpha = round(float(rng.uniform(0, 1)), 3)
    elif family == "softmax" and draw < 0.25:
        alpha = round(float(rng.uniform(0.1, 2.0)), 3)
    elif family == "softmax" and draw < 0.5:
        alpha = tuple(np.round(rng.uniform(0.0, 2.0, classes), 3).tolist())
    smoothing = 0.0 if rng.random() < 0.5 else round(float(rng.uniform(0, 0.3)), 3)
    try:
        return PolySpec(epsilons=epsilons, gamma=gamma, alpha=alpha, label_smoothing=smoothing)
    except ValueError:  # a random Poly-N whose loss increases somewhere: use Poly-1 instead
        return PolySpec(epsilons=epsilons[:1], gamma=gamma, alpha=alpha, label_smoothing=smoothing)


def _random_case(rng: np.random.Generator) -> FuzzCase:
    family = "softmax" if rng.random() < 0.6 else "sigmoid"
    classes = int(rng.choice([1, 2, 3, 7, 50, 300]))
    batch = int(rng.choice([0, 1, 2, 5, 8]))
    if rng.random() < 0.3:
        # The last spatial size is >= 2: a trailing size-1 axis is ambiguous to Keras' rank matching
        # (its loss classes squeeze it from y_pred, as Keras' own losses do).
        shape: tuple[int, ...] = (batch, classes, int(rng.integers(1, 4)), int(rng.integers(2, 4)))
        axis = 1
    elif rng.random() < 0.1:
        shape, axis = (classes,), -1
    else:
        shape, axis = (batch, classes), -1
    kinds = ["int", "prob", "prob-unnorm", "onehot"] if family == "softmax" else ["binary", "soft", "int"]
    return FuzzCase(family, _random_spec(rng, family, classes), str(rng.choice(kinds)), shape, axis)


# --------------------------------------------------------------------------- one differential case
def _compare(
    adapter: Any, entry: Any, case: FuzzCase, dtype: str, scale: float, logits: Any, labels: Any, what: str
) -> None:
    native_logits, native_labels, exact, exact_labels = native_inputs(adapter, logits, labels, dtype)
    want, want_grad = reference_values(case, exact, exact_labels, entry)
    out = adapter.call(entry, native_logits, native_labels, case, dtype)
    got = adapter.to_numpy(out)
    grad = adapter.to_numpy(adapter.grad_of(entry, native_logits, native_labels, case, dtype))
    assert got.shape == want.shape, what
    assert adapter.dtype_name(out) == adapter.output_dtype(entry, dtype), what
    tolerances = TOLERANCES[adapter.tolerance_dtype(entry, dtype)]
    rtol, atol = tolerances["loss"]
    # Logits of size L carry an absolute rounding error of about L * eps(dtype) into the loss.
    atol = max(atol, 4 * scale * float(np.finfo(np.float16 if dtype == "bfloat16" else dtype).eps))
    if dtype == "bfloat16":
        atol *= 8
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    rtol, atol = tolerances["grad"]
    weight = max(1.0, float(np.max(np.abs(case.spec.alpha))) if case.spec.alpha is not None else 1.0)
    np.testing.assert_allclose(
        grad, want_grad, rtol=rtol, atol=atol * weight * (1 + sum(map(abs, case.spec.epsilons))), err_msg=what
    )


def _check_case(adapter: Any, rng: np.random.Generator) -> str:
    """Pick an entry point, draw a case it can express, compare with the reference; returns a description."""
    entry = adapter.entry_points[int(rng.integers(len(adapter.entry_points)))]
    for _ in range(200):
        case = _random_case(rng)
        if entry.accepts(case):
            break
    else:  # pragma: no cover - each entry point expresses some drawn case
        raise AssertionError(f"no drawn case fits {entry.name}")
    dtype = str(rng.choice(adapter.dtypes))
    scale = float(rng.choice([0.1, 3.0, 30.0, 1e3]))
    logits = rng.normal(scale=scale, size=case.shape)
    labels = make_labels(rng, case.labels, case.shape, case.axis, case.family)
    what = f"{entry.name} {case.id} {dtype} scale={scale}"
    try:
        _compare(adapter, entry, case, dtype, scale, logits, labels, what)
    except BaseException as error:
        error.add_note(what)
        raise
    return what


# --------------------------------------------------------------------------- per-framework options and bad input
def _torch_options(rng: np.random.Generator) -> str:
    """torch reductions, class weights and ignore_index against the reference (class indices)."""
    import torch

    from polyloss_torch import poly1_cross_entropy, poly_loss

    n, c = int(rng.integers(0, 9)), int(rng.integers(1, 8))
    z = rng.normal(scale=2.0, size=(n, c))
    y = rng.integers(0, c, size=n)
    ignore = int(rng.choice([-100, 0, c - 1]))
    if n and rng.random() < 0.5:
        y[rng.random(n) < 0.3] = ignore if ignore < 0 else y[0]
    y = np.where((y >= 0) & (y < c), y, ignore)
    weight = rng.uniform(0.1, 2.0, size=c) if rng.random() < 0.5 else None
    reduction = str(rng.choice(["none", "mean", "sum"]))
    eps = round(float(rng.uniform(-1, 3)), 3)
    spec = PolySpec.poly1(eps)
    keep = y != ignore
    per = np.zeros(n)
    if keep.any():
        per[keep] = reference.softmax_poly_loss(z[keep], y[keep], spec, weight=weight)
    w_y = np.zeros(n)
    w_y[keep] = 1.0 if weight is None else weight[y[keep]]
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / w_y.sum() if w_y.sum() else np.nan}[reduction]
    kwargs = {
        "weight": None if weight is None else torch.tensor(weight),
        "ignore_index": ignore,
        "reduction": reduction,
    }
    zt, yt = torch.tensor(z), torch.tensor(y)
    what = (
        f"torch options n={n} c={c} ignore_index={ignore} weight={weight is not None} reduction={reduction} eps={eps}"
    )
    for got in (poly1_cross_entropy(zt, yt, epsilon=eps, **kwargs), poly_loss(zt, yt, spec, **kwargs)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12, err_msg=what)
    return what


def _keras_options(rng: np.random.Generator) -> str:
    """Keras from_logits=False: probabilities in, the reference of their logits out (moderate logits)."""
    from keras import ops

    from polyloss_tf import poly_loss

    n, c = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    z = rng.normal(scale=1.0, size=(n, c))
    spec = _random_spec(rng, "softmax", c)
    if rng.random() < 0.5:
        y = rng.integers(0, c, size=n)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        got = poly_loss(ops.convert_to_tensor(y), ops.convert_to_tensor(probs), spec, from_logits=False)
        want = reference.softmax_poly_loss(z, y, spec)
        family = "softmax"
    else:
        spec = PolySpec(epsilons=spec.epsilons, gamma=spec.gamma, label_smoothing=spec.label_smoothing)
        t = rng.uniform(size=(n, c))
        got = poly_loss(
            ops.convert_to_tensor(t),
            ops.convert_to_tensor(1 / (1 + np.exp(-z))),
            spec,
            family="sigmoid",
            from_logits=False,
        )
        want = reference.sigmoid_poly_loss(z, t, spec)
        family = "sigmoid"
    what = f"keras from_logits=False {family} {spec}"
    got = np.asarray(ops.convert_to_numpy(got))
    # Keras on JAX (no x64) converts the float64 inputs to float32: hold that result to float32's tolerance.
    rtol, atol = (1e-6, 1e-9) if got.dtype == np.float64 else TOLERANCES["float32"]["loss"]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    return what


def _bad_inputs(backend: Backend) -> list[tuple[str, Callable[[np.random.Generator], Any]]]:
    """(argument name, thunk maker) pairs: each call must raise ValueError/TypeError naming the argument."""
    z = np.zeros((3, 4))
    y = np.array([0, 1, 3])
    t = np.zeros((3, 4))
    if backend is Backend.TORCH:
        import torch

        import polyloss_torch as pt

        zt, yt, tt = torch.tensor(z), torch.tensor(y), torch.tensor(t)
        return [
            ("epsilon", lambda r: pt.poly1_cross_entropy(zt, yt, epsilon=-1.0 - r.uniform(0.01, 5))),
            ("epsilon", lambda r: pt.Poly1CrossEntropyLoss(epsilon="1")),
            ("label_smoothing", lambda r: pt.poly1_cross_entropy(zt, yt, label_smoothing=1.0 + r.uniform(0, 1))),
            ("reduction", lambda r: pt.poly1_cross_entropy(zt, yt, reduction="avg")),
            ("reduction", lambda r: pt.PolyLoss(PolySpec.poly1(), reduction="batchmean")),
            ("weight", lambda r: pt.poly1_cross_entropy(zt, yt, weight=torch.ones(int(r.integers(1, 4))))),
            ("target", lambda r: pt.poly1_cross_entropy(zt, torch.tensor([0, 1, int(r.integers(4, 99))]))),
            ("target", lambda r: pt.poly_loss(zt, torch.tensor([0, -int(r.integers(1, 50)), 1]), PolySpec.poly1())),
            ("alpha", lambda r: pt.poly1_focal_loss(zt, tt, alpha=1.0 + r.uniform(0.01, 3))),
            ("gamma", lambda r: pt.poly1_focal_loss(zt, tt, gamma=-r.uniform(0.01, 3))),
            ("gamma", lambda r: pt.Poly1FocalLoss(gamma=float("nan"))),
            ("target", lambda r: pt.poly1_focal_loss(zt, tt + 1.5)),
            ("input", lambda r: pt.poly1_cross_entropy(torch.tensor(y), yt)),
        ]
    if backend is Backend.KERAS:
        import polyloss_tf as ptf

        return [
            ("epsilon", lambda r: ptf.poly1_categorical_crossentropy(t, z, epsilon=-1.0 - r.uniform(0.01, 5))),
            ("epsilon", lambda r: ptf.Poly1CategoricalCrossentropy(epsilon="1")),
            ("label_smoothing", lambda r: ptf.Poly1BinaryCrossentropy(label_smoothing=1.0 + r.uniform(0, 1))),
            ("gamma", lambda r: ptf.poly1_binary_focal_crossentropy(t, z, gamma=-r.uniform(0.01, 3))),
            ("alpha", lambda r: ptf.Poly1BinaryFocalCrossentropy(alpha=1.0 + r.uniform(0.01, 3))),
            ("from_logits", lambda r: ptf.Poly1SparseCategoricalCrossentropy(from_logits="yes")),
            (
                "y_true",
                lambda r: ptf.poly1_sparse_categorical_crossentropy(
                    np.array([0, int(r.integers(4, 99)), 1]), z, from_logits=True
                ),
            ),
            ("y_true", lambda r: ptf.poly1_binary_crossentropy(t + 1.5, z, from_logits=True)),
        ]
    import polyloss_jax as pj

    return [
        ("epsilon", lambda r: pj.poly1_cross_entropy(z, t, epsilon=-1.0 - r.uniform(0.01, 5))),
        ("epsilon", lambda r: pj.poly1_cross_entropy_with_integer_labels(z, y, epsilon="1")),
        ("gamma", lambda r: pj.poly1_sigmoid_focal_loss(z, t, gamma=-r.uniform(0.01, 3))),
        ("alpha", lambda r: pj.poly1_sigmoid_focal_loss(z, t, alpha=1.0 + r.uniform(0.01, 3))),
        ("labels", lambda r: pj.poly1_cross_entropy_with_integer_labels(z, np.array([0, int(r.integers(4, 99)), 1]))),
        ("labels", lambda r: pj.poly1_cross_entropy_with_integer_labels(z, t)),
        ("labels", lambda r: pj.poly1_sigmoid_focal_loss(z, t + 1.5)),
        ("spec", lambda r: pj.poly_loss(z, y, "poly1")),
    ]


def _check_bad_input(backend: Backend, rng: np.random.Generator) -> str:
    cases = _bad_inputs(backend)
    name, make = cases[int(rng.integers(len(cases)))]
    with pytest.raises((ValueError, TypeError)) as info:
        make(rng)
    assert name in str(info.value), f"the error for a bad {name!r} does not name it: {info.value}"
    return f"bad {name}: {info.value}"


# --------------------------------------------------------------------------- the test
@pytest.mark.parametrize("backend_id", ADAPTER_BACKENDS, ids=lambda b: b.value)
def test_adapters_agree_with_the_reference_on_random_inputs(
    backend_id: Backend, request: pytest.FixtureRequest
) -> None:
    seed = request.config.getoption("--fuzz-seed")
    start = request.config.getoption("--fuzz-start")
    budget = request.config.getoption("--fuzz-seconds")
    adapter = load(backend_id)
    options = {Backend.TORCH: _torch_options, Backend.KERAS: _keras_options}.get(backend_id)
    index = start
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline or index < start + 5:
        rng = np.random.default_rng([seed, list(Backend).index(backend_id), index])
        what = "?"
        try:
            draw = rng.random()
            if draw < 0.15:
                what = _check_bad_input(backend_id, rng)
            elif draw < 0.3 and options is not None:
                what = options(rng)
            else:
                what = _check_case(adapter, rng)
        except BaseException as error:
            note = (
                f"fuzz case {index} of seed {seed} ({backend_id.value}): {what}; replay with "
                f"--fuzz-seed={seed} --fuzz-start={index}"
            )
            error.add_note(note)
            print(note)
            raise
        index += 1
    print(f"{backend_id.value}: {index - start} fuzz cases in {budget:.0f} s (seed {seed})")
    assert index - start >= 5
