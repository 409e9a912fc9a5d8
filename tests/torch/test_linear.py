"""The fused linear + PolyLoss head equals the unfused loss on ``hidden @ weight.T + bias``."""

from __future__ import annotations

import itertools

import pytest
import torch

from polyloss_core import PolySpec
from polyloss_torch import (
    LinearPoly1CrossEntropyLoss,
    LinearPolyLoss,
    linear_poly1_cross_entropy,
    linear_poly_loss,
    poly1_cross_entropy,
    poly_loss,
)
from polyloss_torch import linear as linear_module

N, D, V = 13, 6, 9
SPECS = {
    "poly1": PolySpec.poly1(2.0),
    "poly1-smoothing": PolySpec.poly1(1.0, label_smoothing=0.1),
    "poly1-focal-fractional": PolySpec.poly1_focal(1.0, 1.5),
    "polyn-smoothing": PolySpec.poly_n(1.0, 0.5, label_smoothing=0.2),
    "focal-alpha": PolySpec.focal(2.0, alpha=0.25),
    "per-class-alpha-smoothing": PolySpec(
        epsilons=(1.0,), alpha=tuple(0.5 + i / V for i in range(V)), label_smoothing=0.1
    ),
    "drop-2": PolySpec.drop(2),
}


def _problem(dtype=torch.float64, bias=True, ignored=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, D, generator=g, dtype=dtype).requires_grad_()
    w = torch.randn(V, D, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(V, generator=g, dtype=dtype).requires_grad_() if bias else None
    y = torch.randint(0, V, (N,), generator=g)
    if ignored:
        y[[0, 3, 4, 11]] = -100
    return h, w, b, y


def _value_and_grads(loss_fn, h, w, b, upstream):
    loss = loss_fn()
    params = [h, w] + ([b] if b is not None else [])
    return loss.detach(), torch.autograd.grad((loss * upstream).sum(), params)


@pytest.mark.parametrize(
    ("spec_name", "reduction", "bias", "ignored"),
    list(itertools.product(SPECS, ["mean", "sum", "none"], [False, True], [False, True])),
)
def test_linear_poly_loss_equals_unfused_value_and_gradients(spec_name, reduction, bias, ignored) -> None:
    spec = SPECS[spec_name]
    h, w, b, y = _problem(bias=bias, ignored=ignored)
    upstream = torch.randn(N, dtype=h.dtype) if reduction == "none" else torch.tensor(1.7, dtype=h.dtype)
    logits = lambda: h @ w.T + (b if b is not None else 0)  # noqa: E731
    want = _value_and_grads(lambda: poly_loss(logits(), y, spec, reduction=reduction), h, w, b, upstream)
    for chunk_size in (1, 4, N, 100):
        got = _value_and_grads(
            lambda rows=chunk_size: linear_poly_loss(h, w, y, spec, bias=b, reduction=reduction, chunk_size=rows),
            h,
            w,
            b,
            upstream,
        )
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
        for g_got, g_want in zip(got[1], want[1], strict=True):
            torch.testing.assert_close(g_got, g_want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_linear_poly1_cross_entropy_equals_poly1_cross_entropy(reduction, smoothing) -> None:
    h, w, b, y = _problem()
    h3, y3 = h.reshape(1, N, D), y.reshape(1, N)  # any leading dimensions
    kwargs = dict(epsilon=-0.5, reduction=reduction, label_smoothing=smoothing)
    upstream = torch.randn(1, N, dtype=h.dtype) if reduction == "none" else torch.tensor(1.0, dtype=h.dtype)
    want = _value_and_grads(
        lambda: poly1_cross_entropy((h3 @ w.T + b).transpose(1, 2), y3, **kwargs), h, w, b, upstream
    )
    got = _value_and_grads(
        lambda: linear_poly1_cross_entropy(h3, w, y3, bias=b, chunk_size=5, **kwargs), h, w, b, upstream
    )
    assert got[0].shape == want[0].shape
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    for g_got, g_want in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(g_got, g_want, rtol=1e-11, atol=1e-12)


def test_module_holds_options_and_matches_function() -> None:
    h, w, b, y = _problem()
    criterion = LinearPoly1CrossEntropyLoss(epsilon=2.0, label_smoothing=0.1, chunk_size=3)
    assert "epsilon=2.0" in repr(criterion)
    assert not list(criterion.parameters())
    torch.testing.assert_close(
        criterion(h, w, y, bias=b), linear_poly1_cross_entropy(h, w, y, bias=b, epsilon=2.0, label_smoothing=0.1)
    )
    focal = LinearPolyLoss(PolySpec.focal(2.0), reduction="sum")
    torch.testing.assert_close(focal(h, w, y), poly_loss(h @ w.T, y, PolySpec.focal(2.0), reduction="sum"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_compute_in_float32_and_return_grads_in_input_dtype(dtype) -> None:
    h64, w64, b64, y = _problem(seed=3)
    h, w, b = (t.detach().to(dtype).requires_grad_() for t in (h64, w64, b64))
    loss = linear_poly1_cross_entropy(h, w, y, bias=b, chunk_size=4)
    loss.backward()
    assert loss.dtype == torch.float32
    assert (h.grad.dtype, w.grad.dtype, b.grad.dtype) == (dtype, dtype, dtype)
    # Against the exact (float64) loss of the same low-precision numbers: only the logits'
    # rounding to the input dtype (as in ``hidden @ weight.T``) separates them.
    hr, wr, br = (t.detach().double().requires_grad_() for t in (h, w, b))
    ref = poly1_cross_entropy(hr @ wr.T + br, y)
    ref.backward()
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=4 * eps, atol=0.0)
    for got, want in ((h.grad, hr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        torch.testing.assert_close(got.double(), want, rtol=0.0, atol=8 * eps * want.abs().max().item())


def test_large_logits_stay_finite() -> None:
    h, w, b, y = _problem(dtype=torch.float32, ignored=False)
    with torch.no_grad():
        w.mul_(1e3)
    loss = linear_poly1_cross_entropy(h, w, y, bias=b)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(h.grad).all()
    assert torch.isfinite(w.grad).all()


def test_no_grad_and_frozen_weight() -> None:
    h, w, b, y = _problem()
    with torch.no_grad():
        value = linear_poly1_cross_entropy(h, w, y, bias=b)
    torch.testing.assert_close(value, poly1_cross_entropy(h @ w.T + b, y).detach())
    w.requires_grad_(False)
    linear_poly1_cross_entropy(h, w, y, bias=b).backward()
    assert w.grad is None
    assert h.grad is not None
    assert b.grad is not None


def test_second_backward_through_a_scalar_loss_raises() -> None:
    """The gradients formed in the forward are scaled in place: a retained graph cannot be reused silently."""
    h, w, b, y = _problem()
    loss = linear_poly1_cross_entropy(h, w, y, bias=b)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_all_tokens_ignored_mean_is_nan_like_unfused() -> None:
    h, w, b, y = _problem()
    y = torch.full_like(y, -100)
    assert torch.isnan(poly1_cross_entropy(h @ w.T + b, y))
    assert torch.isnan(linear_poly1_cross_entropy(h, w, y, bias=b))
    assert linear_poly1_cross_entropy(h, w, y, bias=b, reduction="sum") == 0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_no_tokens_give_what_the_unfused_loss_gives(reduction) -> None:
    """An empty batch: nan for a mean (0 / 0, as F.cross_entropy), 0 for a sum, an empty tensor for none."""
    h, w = torch.zeros(0, 4, requires_grad=True), torch.ones(5, 4, requires_grad=True)
    y = torch.zeros(0, dtype=torch.long)
    got, want = (
        linear_poly1_cross_entropy(h, w, y, reduction=reduction),
        poly1_cross_entropy(h @ w.T, y, reduction=reduction),
    )
    torch.testing.assert_close(got, want, equal_nan=True)
    got.sum().backward()
    assert h.grad.shape == h.shape
    assert w.grad.shape == w.shape


def test_default_chunk_holds_about_64_mib_of_logits() -> None:
    assert linear_module.CHUNK_BYTES // (4 * 128256) == 130


def test_torch_compile_of_a_function_calling_it() -> None:
    h, w, b, y = _problem(dtype=torch.float32)
    y = y.clamp_min(0)

    def step(h, w, b, y):
        return linear_poly1_cross_entropy(h, w, y, bias=b, epsilon=1.0, chunk_size=4) * 2.0

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(step)(h, w, b, y)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    got = compiled(h, w, b, y)
    grads = torch.autograd.grad(got, [h, w, b])
    want = step(h, w, b, y)
    torch.testing.assert_close(got, want)
    for g_got, g_want in zip(grads, torch.autograd.grad(want, [h, w, b]), strict=True):
        torch.testing.assert_close(g_got, g_want)


# --------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_the_argument() -> None:
    h, w, b, y = _problem()
    with pytest.raises(ValueError, match=r"weight must have shape \('V', 6\)"):
        linear_poly1_cross_entropy(h, w[:, :5], y)
    with pytest.raises(ValueError, match="target contains class index 9, outside the valid range"):
        linear_poly1_cross_entropy(h, w, y.masked_fill(y == -100, 9))
    with pytest.raises(ValueError, match="target contains class index -3"):
        linear_poly1_cross_entropy(h, w, y.masked_fill(y == -100, -3))
    with pytest.raises(ValueError, match=r"chunk_size must be a positive number of rows.*chunk_size=0"):
        linear_poly1_cross_entropy(h, w, y, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        LinearPoly1CrossEntropyLoss(chunk_size=2.5)
    with pytest.raises(TypeError, match=r"weight must have hidden's dtype.*torch\.float32"):
        linear_poly1_cross_entropy(h, w.float(), y)
    with pytest.raises(TypeError, match="bias must have hidden's dtype"):
        linear_poly1_cross_entropy(h, w, y, bias=b.float())
    with pytest.raises(ValueError, match=r"bias must have shape \(9,\)"):
        linear_poly1_cross_entropy(h, w, y, bias=b[:3])
    with pytest.raises(ValueError, match=r"target must have shape \(13,\)"):
        linear_poly1_cross_entropy(h, w, y[:5])
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        linear_poly1_cross_entropy(h, w, y.double())
    with pytest.raises(ValueError, match=r"epsilon must be a finite number >= -1, got epsilon=-2\.0"):
        linear_poly1_cross_entropy(h, w, y, epsilon=-2.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        linear_poly1_cross_entropy(h, w, y, reduction="batchmean")
    with pytest.raises(ValueError, match="alpha has 3 per-class weights"):
        linear_poly_loss(h, w, y, PolySpec(alpha=(1.0, 2.0, 3.0)))


def test_mixed_devices_are_named() -> None:
    h, w, _, y = _problem()
    with pytest.raises(ValueError, match="weight must be on hidden's device, got hidden on cpu and weight on meta"):
        linear_poly1_cross_entropy(h, w.detach().to("meta"), y)
