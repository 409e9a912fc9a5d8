"""Poly-1 cross-entropy as a drop-in for ``F.cross_entropy``: every argument keeps torch's meaning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyloss_core import PolySpec, reference
from polyloss_torch import Poly1CrossEntropyLoss, poly1_cross_entropy, poly_loss

from .helpers import LAYOUTS, class_dim, class_indices, class_weight, logits, probabilities

REDUCTIONS = ("none", "mean", "sum")


def _combinations() -> list:
    params = []
    for layout, kind, weighted, reduction, smoothing, ignore_index in itertools.product(
        LAYOUTS, ("index", "prob"), (False, True), REDUCTIONS, (0.0, 0.2), (-100, 2)
    ):
        if kind == "prob" and ignore_index != -100:
            continue  # torch ignores ignore_index for probability targets
        case_id = f"{layout}-{kind}-{'w' if weighted else 'nw'}-{reduction}-s{smoothing}-ii{ignore_index}"
        params.append(pytest.param(layout, kind, weighted, reduction, smoothing, ignore_index, id=case_id))
    return params


COMBINATIONS = _combinations()


def _inputs(layout: str, kind: str, weighted: bool, ignore_index: int, dtype: torch.dtype, seed: int = 0):
    shape = LAYOUTS[layout]
    z = logits(shape, seed, dtype)
    target = class_indices(shape, seed, ignore_index) if kind == "index" else probabilities(shape, seed, dtype)
    weight = class_weight(shape[class_dim(shape)], seed, dtype) if weighted else None
    return z, target, weight


def _value_and_grad(fn, z: torch.Tensor):
    leaf = z.detach().clone().requires_grad_(True)
    out = fn(leaf)
    (grad,) = torch.autograd.grad(out.sum(), leaf)
    return out.detach(), grad


@pytest.mark.parametrize(("layout", "kind", "weighted", "reduction", "smoothing", "ignore_index"), COMBINATIONS)
def test_epsilon_zero_is_torch_cross_entropy(layout, kind, weighted, reduction, smoothing, ignore_index) -> None:
    """epsilon=0: the same numbers and gradients as F.cross_entropy, bit for bit, for every option."""
    z, target, weight = _inputs(layout, kind, weighted, ignore_index, torch.float32)
    options = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction, "label_smoothing": smoothing}
    ours, ours_grad = _value_and_grad(lambda x: poly1_cross_entropy(x, target, epsilon=0.0, **options), z)
    native, native_grad = _value_and_grad(lambda x: F.cross_entropy(x, target, **options), z)
    assert ours.shape == native.shape
    assert ours.dtype == native.dtype
    assert torch.equal(ours, native)
    assert torch.equal(ours_grad, native_grad)

    module = Poly1CrossEntropyLoss(epsilon=0.0, **options)
    native_module = torch.nn.CrossEntropyLoss(**options)
    assert torch.equal(module(z, target), native_module(z, target))


@pytest.mark.parametrize(("layout", "kind", "weighted", "reduction", "smoothing", "ignore_index"), COMBINATIONS)
def test_own_reduction_matches_torch_semantics(layout, kind, weighted, reduction, smoothing, ignore_index) -> None:
    """Our own code path (a spec with alpha=1, so no shortcut to F.cross_entropy) reproduces torch's
    ignore_index handling, smoothing, per-class weights and weighted-mean denominator."""
    z, target, weight = _inputs(layout, kind, weighted, ignore_index, torch.float64)
    spec = PolySpec(alpha=1.0, label_smoothing=smoothing)
    ours, ours_grad = _value_and_grad(
        lambda x: poly_loss(x, target, spec, weight=weight, ignore_index=ignore_index, reduction=reduction), z
    )
    native, native_grad = _value_and_grad(
        lambda x: F.cross_entropy(
            x, target, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing
        ),
        z,
    )
    assert ours.shape == native.shape
    torch.testing.assert_close(ours, native, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_grad, native_grad, rtol=1e-10, atol=1e-12)


def _expected_poly(z, target, weight, spec, kind, ignore_index, reduction):
    """The float64 reference, with torch's ignore_index and mean denominators applied here."""
    dim = class_dim(tuple(z.shape))
    z_np = z.numpy()
    w_np = None if weight is None else weight.numpy()
    if kind == "prob":
        per = reference.softmax_poly_loss(z_np, target.numpy(), spec, axis=dim, weight=w_np)
        grad = reference.softmax_poly_loss_grad(z_np, target.numpy(), spec, axis=dim, weight=w_np)
        count = float(per.size)
    else:
        t = target.numpy()
        ignored = t == ignore_index
        safe = np.where(ignored, 0, t)
        per = np.where(ignored, 0.0, reference.softmax_poly_loss(z_np, safe, spec, axis=dim, weight=w_np))
        grad = reference.softmax_poly_loss_grad(z_np, safe, spec, axis=dim, weight=w_np)
        grad = np.where(np.expand_dims(ignored, dim), 0.0, grad)
        target_weight = np.ones_like(per) if w_np is None else w_np[safe]
        count = float(np.where(ignored, 0.0, target_weight).sum())
    if reduction == "none":
        return per, grad
    if reduction == "sum":
        return per.sum(), grad
    return per.sum() / count, grad / count


@pytest.mark.parametrize(("layout", "kind", "weighted", "reduction", "smoothing", "ignore_index"), COMBINATIONS)
def test_nonzero_epsilon_keeps_option_meanings(layout, kind, weighted, reduction, smoothing, ignore_index) -> None:
    """epsilon != 0: weights scale the whole per-example loss, ignored entries vanish, torch's denominators."""
    # Alternate a positive and the most negative valid epsilon over the combinations.
    epsilon = 2.0 if (weighted + REDUCTIONS.index(reduction) + (smoothing > 0)) % 2 == 0 else -1.0
    z, target, weight = _inputs(layout, kind, weighted, ignore_index, torch.float64, seed=1)
    spec = PolySpec.poly1(epsilon, label_smoothing=smoothing)
    ours, ours_grad = _value_and_grad(
        lambda x: poly1_cross_entropy(
            x,
            target,
            epsilon=epsilon,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=smoothing,
        ),
        z,
    )
    want, want_grad = _expected_poly(z, target, weight, spec, kind, ignore_index, reduction)
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_grad.numpy(), want_grad, rtol=1e-9, atol=1e-12)


def test_poly1_is_cross_entropy_plus_epsilon_times_one_minus_pt() -> None:
    """The paper's equation, written with torch's own softmax, on a segmentation-shaped batch with ignored pixels."""
    z = logits((2, 6, 5, 5), seed=3, dtype=torch.float64)
    target = class_indices((2, 6, 5, 5), seed=3, ignore_index=255)
    keep = target != 255
    safe = target.masked_fill(~keep, 0)
    ce = F.cross_entropy(z, target, ignore_index=255, reduction="none")
    pt = torch.softmax(z, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    expected = torch.where(keep, ce + 2.5 * (1.0 - pt), torch.zeros_like(ce))
    got = poly1_cross_entropy(z, target, epsilon=2.5, ignore_index=255, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        poly1_cross_entropy(z, target, epsilon=2.5, ignore_index=255),
        expected.sum() / keep.sum(),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_any_integer_dtype_means_class_indices(dtype: torch.dtype) -> None:
    z = logits((6, 5), seed=4)
    target = class_indices((6, 5), seed=4)
    torch.testing.assert_close(poly1_cross_entropy(z, target.to(dtype)), poly1_cross_entropy(z, target))


def test_all_ignored_mean_is_nan_like_torch() -> None:
    z = logits((3, 5), seed=5)
    target = torch.full((3,), -100)
    assert torch.isnan(F.cross_entropy(z, target))
    assert torch.isnan(poly1_cross_entropy(z, target, epsilon=1.0))
    assert poly1_cross_entropy(z, target, epsilon=1.0, reduction="sum").item() == 0.0


def test_empty_batch_matches_torch() -> None:
    z = torch.zeros(0, 5, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long)
    for reduction in REDUCTIONS:
        ours = poly1_cross_entropy(z, target, epsilon=1.0, reduction=reduction)
        native = F.cross_entropy(z, target, reduction=reduction)
        assert ours.shape == native.shape
        torch.testing.assert_close(ours, native, equal_nan=True)


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_non_contiguous_logits(layout: str) -> None:
    """Strided logits (channels_last images, a transposed (C, N) buffer) give the contiguous result."""
    if layout == "channels_last":
        z = logits((2, 5, 4, 3), seed=6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        target = class_indices((2, 5, 4, 3), seed=6, ignore_index=-100)
    else:
        z = logits((5, 7), seed=6, dtype=torch.float64).t()
        target = class_indices((7, 5), seed=6, ignore_index=-100)
    assert not z.is_contiguous()
    got, got_grad = _value_and_grad(lambda x: poly1_cross_entropy(x, target, epsilon=2.0, reduction="none"), z)
    want, want_grad = _value_and_grad(
        lambda x: poly1_cross_entropy(x.contiguous(), target, epsilon=2.0, reduction="none"), z
    )
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-14, atol=1e-15)
