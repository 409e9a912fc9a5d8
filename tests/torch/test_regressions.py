"""Regression tests for torch conventions found by adversarial testing: each named after what it protects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyloss_core import PolySpec
from polyloss_torch import Poly1CrossEntropyLoss, Poly1FocalLoss, PolyLoss, _validate, poly1_cross_entropy, poly_loss

from .helpers import TORCH_JIT_WARNING, class_indices, logits, probabilities


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("family", ["softmax", "sigmoid"])
@pytest.mark.parametrize("margin", [20.0, 40.0, 100.0])
def test_second_derivatives_stay_finite_for_fractional_gamma(dtype, family, margin) -> None:
    z = torch.tensor([[margin, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    y = torch.tensor([0]) if family == "softmax" else torch.tensor([[1.0, 0.0, 0.0]], dtype=dtype)
    loss = poly_loss(z, y, PolySpec.focal(gamma=1.5), family=family, reduction="sum")
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), z)
    assert torch.isfinite(grad).all()
    assert torch.isfinite(second).all(), second


def test_second_derivatives_through_target_cross_entropy_match_autograd() -> None:
    z = logits((4, 6), seed=3, dtype=torch.float64).requires_grad_(True)
    y = class_indices((4, 6), seed=3)
    spec = PolySpec(epsilons=(1.0,), gamma=1.5)

    def hessian_row(fn):
        (grad,) = torch.autograd.grad(fn(z), z, create_graph=True)
        return torch.autograd.grad(grad[:, 0].sum(), z)[0]

    composed = hessian_row(
        lambda x: (lambda c: c * (-torch.expm1(-c)) ** 1.5 + (-torch.expm1(-c)) ** 2.5)(
            torch.nn.functional.cross_entropy(x, y, reduction="none")
        ).sum()
    )
    torch.testing.assert_close(hessian_row(lambda x: poly_loss(x, y, spec, reduction="sum")), composed)


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
def test_compiled_sigmoid_targets_outside_unit_interval_give_nan() -> None:
    torch._dynamo.reset()
    z = logits((3, 4), seed=5)
    target = torch.full((3, 4), 0.5)
    target[1, 2] = 2.0
    module = Poly1FocalLoss()
    with pytest.raises(ValueError, match="got values in"):
        module(z, target)  # eager on CPU: raises
    out = torch.compile(module, fullgraph=True, backend="aot_eager")(z, target)
    assert torch.isnan(out[1, 2])
    assert torch.isfinite(out).sum() == 11


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
def test_compile_two_module_instances_with_different_float_options() -> None:
    z = logits((6, 5), seed=6)
    y = class_indices((6, 5), seed=6)
    soft = probabilities((6, 5), seed=6)
    torch._dynamo.reset()
    pairs = [
        (Poly1CrossEntropyLoss(epsilon=2.0, label_smoothing=0.1), Poly1CrossEntropyLoss(epsilon=2.0), y),
        (Poly1CrossEntropyLoss(epsilon=1.0), Poly1CrossEntropyLoss(epsilon=3.0), y),
        (Poly1FocalLoss(gamma=2.0), Poly1FocalLoss(gamma=3.0), soft),
    ]
    for first, second, target in pairs:
        for module in (first, second):
            got = torch.compile(module, fullgraph=True, backend="aot_eager")(z, target)
            torch.testing.assert_close(got, module(z, target))


def test_jit_trace_with_ignore_index_in_a_later_batch() -> None:
    module = Poly1CrossEntropyLoss(epsilon=1.0, ignore_index=255)
    z = logits((6, 5), seed=7)
    first = class_indices((6, 5), seed=7)  # no ignored entry
    traced = torch.jit.trace(module, (z, first), check_trace=False)
    later = first.clone()
    later[::2] = 255
    torch.testing.assert_close(traced(z, later), module(z, later))
    torch.testing.assert_close(traced(z, first), module(z, first))


@pytest.mark.parametrize(
    "kwargs", [{"epsilon": np.float32(2.0)}, {"label_smoothing": np.float64(0.1)}, {"ignore_index": np.int64(3)}]
)
def test_numpy_scalars_are_accepted_as_hyper_parameters(kwargs) -> None:
    z = logits((6, 5), seed=8)
    y = class_indices((6, 5), seed=8)
    plain = {k: v.item() for k, v in kwargs.items()}
    torch.testing.assert_close(poly1_cross_entropy(z, y, **kwargs), poly1_cross_entropy(z, y, **plain))
    torch.testing.assert_close(Poly1CrossEntropyLoss(**kwargs)(z, y), Poly1CrossEntropyLoss(**plain)(z, y))
    assert Poly1FocalLoss(epsilon=np.float32(2.0), gamma=np.int64(3)).gamma == 3.0


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
@pytest.mark.parametrize("module", [Poly1CrossEntropyLoss(), PolyLoss(PolySpec.poly1()), Poly1FocalLoss()])
def test_jit_script_is_documented_as_unsupported_and_trace_works(module) -> None:
    """Documented in the modules' docstring and docs/torch.md: scripting raises; tracing is the TorchScript route."""
    with pytest.raises(Exception):  # noqa: B017, PT011 - TorchScript's frontend error type varies
        torch.jit.script(module)
    z = logits((6, 5), seed=9)
    target = probabilities((6, 5), seed=9) if isinstance(module, Poly1FocalLoss) else class_indices((6, 5), seed=9)
    torch.testing.assert_close(torch.jit.trace(module, (z, target), check_trace=False)(z, target), module(z, target))


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
def test_a_trace_does_not_keep_the_branches_taken_on_its_example_values() -> None:
    """Traced with one-hot float rows (which eagerly take the class-index route on CPU), soft rows still get
    their own loss; traced without underflow, underflowing rows still get the exact cross-entropy."""
    module = Poly1CrossEntropyLoss(reduction="none")
    z = logits((6, 20), seed=14)
    one_hot = torch.nn.functional.one_hot(class_indices((6, 20), seed=14), 20).float()
    soft = probabilities((6, 20), seed=14)
    traced = torch.jit.trace(module, (z, one_hot), check_trace=False)
    torch.testing.assert_close(traced(z, soft), module(z, soft))
    z, y = logits((64, 1024), seed=15), class_indices((64, 1024), seed=15, ignore_index=None)
    traced = torch.jit.trace(module, (z, y), check_trace=False)
    gap = z.clone()
    gap[:, 0] += 200.0  # p_t underflows wherever the target is not class 0
    torch.testing.assert_close(traced(gap, y), module(gap, y))


@pytest.mark.parametrize("module", [Poly1CrossEntropyLoss(), Poly1CrossEntropyLoss(epsilon=0.0)])
def test_probability_targets_with_ignore_index_raise_like_torch(module) -> None:
    z = logits((4, 3), seed=10)
    q = probabilities((4, 3), seed=10)
    message = "ignore_index is not supported for floating point target"
    for ignore_index in (0, 2, 255):
        with pytest.raises(RuntimeError, match=message):
            torch.nn.functional.cross_entropy(z, q, ignore_index=ignore_index)
        with pytest.raises(RuntimeError, match=message):
            poly1_cross_entropy(z, q, epsilon=module.epsilon, ignore_index=ignore_index)
        module.ignore_index = ignore_index
        with pytest.raises(RuntimeError, match=message):
            module(z, q)
    for ignore_index in (-1, -100):  # torch accepts negative values with probabilities, and ignores them
        module.ignore_index = ignore_index
        torch.testing.assert_close(module(z, q), poly1_cross_entropy(z, q, epsilon=module.epsilon))


class _HostReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor methods that copy values to the host."""

    NAMES = ("item", "__bool__", "tolist", "cpu", "numpy", "__int__", "__float__", "nonzero")

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.NAMES:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


# Small heads take the plain composition; from 32 768 logits on the custom Functions run, and a
# strided class dimension (segmentation) takes the other branch of TargetCrossEntropy.
FAST_PATH_SHAPES = {"small": (8, 20), "function": (64, 1024), "strided": (2, 21, 32, 32)}


def _fast_path_cases(device: str, shape: tuple[int, ...] = FAST_PATH_SHAPES["small"]):
    num_classes = shape[1]
    z = logits(shape, seed=11).to(device).requires_grad_(True)
    y = class_indices(shape, seed=11, ignore_index=-100).to(device)
    q = probabilities(shape, seed=11).to(device)
    spec = PolySpec(epsilons=(1.0, 0.5), gamma=1.5, label_smoothing=0.1)
    return [
        lambda: poly1_cross_entropy(z, y, epsilon=2.0),
        lambda: poly1_cross_entropy(
            z, y, epsilon=2.0, label_smoothing=0.1, weight=torch.ones(num_classes, device=device)
        ),
        lambda: poly1_cross_entropy(z, q, epsilon=2.0),
        lambda: poly_loss(z, y, spec),
        lambda: poly_loss(z, q, spec),
        lambda: poly_loss(z, y, PolySpec.poly1_focal(), family="sigmoid"),
        lambda: Poly1CrossEntropyLoss(epsilon=2.0)(z, y),
    ]


@pytest.mark.parametrize("shape", FAST_PATH_SHAPES.values(), ids=FAST_PATH_SHAPES.keys())
@pytest.mark.parametrize("case", range(7))
def test_no_host_reads_on_the_fast_paths_off_the_host(case: int, shape: tuple[int, ...]) -> None:
    """Meta tensors stand for an accelerator: any value read would be counted (and could not even run)."""
    with _HostReads() as reads:
        _fast_path_cases("meta", shape)[case]().backward()
    assert reads.calls == []


@pytest.mark.parametrize("shape", FAST_PATH_SHAPES.values(), ids=FAST_PATH_SHAPES.keys())
@pytest.mark.parametrize("case", range(7))
def test_cpu_fast_paths_read_host_memory_only_for_the_underflow_branch(
    case: int, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CPU the reads are TargetCrossEntropy's underflow test and the one-hot test of dense targets, whose
    soft rows stop at the first read (host memory, no sync); without the host
    branches, the route every other device takes, a CPU call with real values reads nothing."""
    from polyloss_torch import _autograd, _impl

    uses_function = shape != FAST_PATH_SHAPES["small"] and case in (0, 6)  # Poly-1, class indices
    tests_one_hot = shape != FAST_PATH_SHAPES["small"] and case in (2, 4)  # dense targets
    with _HostReads() as reads:
        _fast_path_cases("cpu", shape)[case]().backward()
    assert reads.calls == (["__bool__"] if uses_function or tests_one_hot else [])
    monkeypatch.setattr(_autograd, "branches_on_host", lambda tensor: False)
    monkeypatch.setattr(_impl, "branches_on_host", lambda tensor: False)
    with _HostReads() as reads:
        _fast_path_cases("cpu", shape)[case]().backward()
    assert reads.calls == []


def test_sigmoid_targets_are_read_only_in_host_memory() -> None:
    """On CPU eager the [0, 1] check reads host memory (no device sync); on any other device nothing is read."""
    z = torch.empty(8, 20, device="meta")
    t = torch.empty(8, 20, device="meta")
    with _HostReads() as reads:
        Poly1FocalLoss()(z, t)
    assert reads.calls == []
    with _HostReads() as reads:
        Poly1FocalLoss()(logits((8, 20), seed=12), probabilities((8, 20), seed=12))
    assert reads.calls == ["tolist"]


@pytest.mark.parametrize(
    ("accepted", "rejected"),
    [
        ({"epsilon": 1}, {"epsilon": True}),
        ({"label_smoothing": 0}, {"label_smoothing": False}),
        ({"ignore_index": 1}, {"ignore_index": True}),
        ({"epsilon": 0.5}, {"epsilon": float("nan")}),
    ],
    ids=["epsilon-bool", "smoothing-bool", "ignore-index-bool", "epsilon-nan"],
)
def test_memoised_options_still_reject_what_the_checks_reject(accepted: dict, rejected: dict) -> None:
    """poly1_cross_entropy memoises checked options; an equal-hashing value of another type (True == 1) must miss."""
    z, target = logits((4, 5), seed=13), class_indices((4, 5), seed=13, ignore_index=None)
    poly1_cross_entropy(z, target, **accepted)  # now memoised
    with pytest.raises((TypeError, ValueError)):
        poly1_cross_entropy(z, target, **rejected)


def test_memoised_layouts_still_reject_what_the_checks_reject() -> None:
    """The tensor checks are memoised by shape, dtype and family; every other layout is checked afresh."""
    z, target = logits((4, 5), seed=14), class_indices((4, 5), seed=14, ignore_index=None)
    for family in ("softmax", "sigmoid"):
        poly_loss(z, target, PolySpec.poly1(1.0), family=family)  # now memoised
    with pytest.raises(ValueError, match=r"target must have shape \(4,\).*got \(3,\)"):
        poly1_cross_entropy(z, target[:3])
    with pytest.raises(TypeError, match=r"target must hold .* got dtype torch\.bool"):
        poly1_cross_entropy(z, target.bool())
    with pytest.raises(TypeError, match=r"input must have a floating point dtype, got torch\.int64"):
        poly1_cross_entropy(z.long(), target)
    with pytest.raises(ValueError, match=r"must have shape \(4, 5\).*got \(4, 4\)"):  # the dense layout
        poly1_cross_entropy(z, torch.softmax(z[:, :4], 1))
    # Integer 0/1 targets of the input's shape are sigmoid targets, but softmax class indices of the wrong shape.
    binary = (torch.rand_like(z) < 0.5).long()
    poly_loss(z, binary, PolySpec.poly1(1.0), family="sigmoid")
    with pytest.raises(ValueError, match=r"class-index target must have shape \(4,\)"):
        poly_loss(z, binary, PolySpec.poly1(1.0))
    # The same shapes as a memoised call, but sigmoid targets of the input's shape must be in [0, 1].
    sigmoid_targets = torch.full_like(z, 2.0)
    poly_loss(z, torch.rand_like(z), PolySpec.poly1(1.0), family="sigmoid")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        poly_loss(z, sigmoid_targets, PolySpec.poly1(1.0), family="sigmoid")
    # A memoised layout gives the same numbers as a fresh check.
    _validate._LAYOUTS.clear()
    fresh = poly1_cross_entropy(z, target, reduction="none")
    assert torch.equal(poly1_cross_entropy(z, target, reduction="none"), fresh)
