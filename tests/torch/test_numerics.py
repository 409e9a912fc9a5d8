"""Numerics: half precision, extreme logits, gradcheck (first and second order), torch.func."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from polyloss_core import PolySpec, reference
from polyloss_torch import Poly1FocalLoss, poly1_cross_entropy, poly1_focal_loss, poly_loss

from .helpers import TORCH_JIT_WARNING, class_indices, class_weight, logits, probabilities

HALF = [torch.float16, torch.bfloat16]


# --------------------------------------------------------------------------- half precision


def test_autocast_region_gives_float32_loss() -> None:
    """Inside torch.autocast the model emits bf16 logits; the loss is float32 and matches the eager value."""
    model = torch.nn.Linear(8, 5)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
        loss = poly1_cross_entropy(out, target, epsilon=1.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, poly1_cross_entropy(out.float(), target, epsilon=1.0))
    loss.backward()
    assert model.weight.grad is not None
    assert torch.isfinite(model.weight.grad).all()


# --------------------------------------------------------------------------- extreme logits
EXTREME = {torch.float32: 1e4, torch.float16: 6e4, torch.bfloat16: 1e4, torch.float64: 1e4}


def _extreme_logits(dtype: torch.dtype) -> torch.Tensor:
    big = EXTREME[dtype]
    rows = [[big, 0.0, -big], [-big, big, 0.0], [0.0, 0.0, 0.0], [-big, -big, big], [big, big, -big]]
    return torch.tensor(rows, dtype=torch.float64).to(dtype)


def _loss_calls():
    """(name, callable(z) -> loss) covering every public entry point and both families."""
    target = torch.tensor([0, 0, 2, 2, 1])
    soft = torch.tensor([[0.75, 0.125, 0.125]] * 5)  # exact in float16 and bfloat16
    onehot = torch.nn.functional.one_hot(target, 3).float()
    weight = torch.tensor([0.5, 2.0, 1.0])
    return [
        ("poly1-ce-mean", lambda z: poly1_cross_entropy(z, target, epsilon=1.0)),
        ("poly1-ce-weighted-smoothed", lambda z: poly1_cross_entropy(z, target, weight=weight, label_smoothing=0.1)),
        ("poly1-ce-soft-targets", lambda z: poly1_cross_entropy(z, soft.to(z.dtype), epsilon=2.0, reduction="sum")),
        ("poly1-ce-negative-epsilon", lambda z: poly1_cross_entropy(z, target, epsilon=-1.0, reduction="none")),
        ("poly-focal-gamma-half", lambda z: poly_loss(z, target, PolySpec.poly1_focal(1.0, 0.5), reduction="none")),
        (
            "poly-n-focal-smoothed",
            lambda z: poly_loss(z, target, PolySpec(epsilons=(1.0, -0.25), gamma=0.25, label_smoothing=0.1)),
        ),
        ("focal-sigmoid", lambda z: poly1_focal_loss(z, onehot.to(z.dtype), reduction="none")),
        (
            "focal-sigmoid-gamma-half-soft",
            lambda z: poly1_focal_loss(z, soft.to(z.dtype), gamma=0.5, alpha=None, reduction="mean"),
        ),
        ("sigmoid-class-index", lambda z: poly_loss(z, target, PolySpec.poly1_focal(1.0, 0.5, 0.25), family="sigmoid")),
    ]


# --------------------------------------------------------------------------- gradcheck
def _gradcheck_cases():
    z_nc = logits((5, 4), seed=10, dtype=torch.float64)
    z_seg = logits((2, 4, 3, 2), seed=11, dtype=torch.float64)
    t_nc = class_indices((5, 4), seed=10, ignore_index=-100)
    t_seg = class_indices((2, 4, 3, 2), seed=11, ignore_index=3)
    q_nc = probabilities((5, 4), seed=12, dtype=torch.float64)
    w = class_weight(4, seed=13, dtype=torch.float64)
    sig_t = probabilities((5, 4), seed=14, dtype=torch.float64)
    return [
        ("poly1-index-weighted-ignored", z_nc, lambda z: poly1_cross_entropy(z, t_nc, epsilon=2.0, weight=w)),
        (
            "poly1-segmentation-ignore-3",
            z_seg,
            lambda z: poly1_cross_entropy(z, t_seg, epsilon=-0.5, ignore_index=3, weight=w, reduction="sum"),
        ),
        ("poly1-index-smoothed", z_nc, lambda z: poly1_cross_entropy(z, t_nc, epsilon=1.0, label_smoothing=0.2)),
        ("poly1-probabilities", z_nc, lambda z: poly1_cross_entropy(z, q_nc, epsilon=1.0, weight=w)),
        ("poly3-focal-gamma-half", z_seg, lambda z: poly_loss(z, t_seg.clamp(0, 3), PolySpec.poly_n(1.0, 0.5, 0.25))),
        (
            "focal-per-class-alpha",
            z_nc,
            lambda z: poly_loss(z, t_nc, PolySpec(epsilons=(1.0,), gamma=0.5, alpha=(1.0, 0.5, 2.0, 0.25))),
        ),
        ("sigmoid-focal-soft", z_nc, lambda z: poly1_focal_loss(z, sig_t, epsilon=1.0, gamma=1.5, reduction="sum")),
        (
            "sigmoid-class-index-ignored",
            z_seg,
            lambda z: poly_loss(z, t_seg, PolySpec.poly1_focal(-1.0, 2.0, 0.25), family="sigmoid", ignore_index=3),
        ),
    ]


GRADCHECK_CASES = _gradcheck_cases()


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
@pytest.mark.parametrize(("name", "z", "fn"), GRADCHECK_CASES, ids=[c[0] for c in GRADCHECK_CASES])
def test_gradcheck_float64(name: str, z: torch.Tensor, fn) -> None:
    """Analytic (autograd) gradients, forward-mode derivatives and second derivatives against finite differences."""
    leaf = z.detach().clone().requires_grad_(True)
    assert gradcheck(fn, (leaf,), check_forward_ad=True)
    assert gradgradcheck(fn, (leaf,))


def test_fast_path_gradient_is_softmax_minus_onehot_scaled() -> None:
    """Poly-1 with hard labels: dL/dz = (1 + eps p_t)(softmax - onehot), per example."""
    z = logits((6, 5), seed=20, dtype=torch.float64).requires_grad_(True)
    target = class_indices((6, 5), seed=20)
    poly1_cross_entropy(z, target, epsilon=3.0, reduction="sum").backward()
    p = torch.softmax(z.detach(), dim=1)
    pt = p.gather(1, target.unsqueeze(1))
    expected = (1.0 + 3.0 * pt) * (p - torch.nn.functional.one_hot(target, 5))
    torch.testing.assert_close(z.grad, expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- torch.func
def test_per_sample_gradients_with_vmap() -> None:
    """torch.func.vmap(grad(...)) over examples: per-example gradients equal one backward per example."""
    from torch.func import grad, vmap

    z = logits((6, 5), seed=30)
    target = class_indices((6, 5), seed=30)

    def one(zi: torch.Tensor, ti: torch.Tensor) -> torch.Tensor:
        return poly1_cross_entropy(zi, ti, epsilon=2.0)

    batched = vmap(grad(one))(z, target)
    for i in range(6):
        leaf = z[i].clone().requires_grad_(True)
        one(leaf, target[i]).backward()
        torch.testing.assert_close(batched[i], leaf.grad)


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
def test_module_under_torch_func_jvp() -> None:
    from torch.func import jvp

    loss_fn = Poly1FocalLoss(reduction="sum")
    z = logits((4, 3), seed=31, dtype=torch.float64)
    target = probabilities((4, 3), seed=31, dtype=torch.float64)
    tangent = torch.ones_like(z)
    _, directional = jvp(lambda x: loss_fn(x, target), (z,), (tangent,))
    leaf = z.clone().requires_grad_(True)
    loss_fn(leaf, target).backward()
    torch.testing.assert_close(directional, (leaf.grad * tangent).sum())


# --------------------------------------------------------------------------- the custom Function's two forward kernels
@pytest.mark.parametrize(
    ("shape", "softmax_kernel"),
    [((6, 3), False), ((6, 20), True), ((20,), True), ((2, 20, 3, 2), True), ((4, 12), False), ((3,), False)],
    ids=["few-classes", "many-classes", "unbatched", "strided-classes", "below-vector-width", "unbatched-few"],
)
def test_both_forward_kernels_agree(shape: tuple[int, ...], softmax_kernel: bool) -> None:
    """Whichever kernel gives p (softmax, or log_softmax then exp), loss and gradient equal the float64 reference."""
    from polyloss_torch._autograd import softmax_kernel_is_faster

    dim = 0 if len(shape) == 1 else 1
    z = logits(shape, seed=40, dtype=torch.float64)
    assert softmax_kernel_is_faster(z, dim) is softmax_kernel
    target = class_indices(shape, seed=40, ignore_index=-100 if len(shape) > 1 else None)
    weight = class_weight(shape[dim], seed=40, dtype=torch.float64)
    spec = PolySpec(epsilons=(2.0, -0.5), gamma=0.5)
    leaf = z.clone().requires_grad_(True)
    loss = poly_loss(leaf, target, spec, weight=weight, reduction="sum")
    loss.backward()
    keep = (target != -100).numpy()
    safe = target.clamp_min(0).numpy()
    want = reference.softmax_poly_loss(z.numpy(), safe, spec, axis=dim, weight=weight.numpy())
    want_grad = reference.softmax_poly_loss_grad(z.numpy(), safe, spec, axis=dim, weight=weight.numpy())
    np.testing.assert_allclose(loss.item(), np.where(keep, want, 0.0).sum(), rtol=1e-12)
    np.testing.assert_allclose(
        leaf.grad.numpy(), np.where(np.expand_dims(keep, dim), want_grad, 0.0), rtol=1e-10, atol=1e-14
    )
    assert gradcheck(lambda x: poly_loss(x, target, spec, weight=weight), (z.clone().requires_grad_(True),))


UNDERFLOW_SHAPES = {
    "classification": (5, 40),
    "strided-classes": (2, 40, 3),
    "unbatched": (40,),
    "few-classes": (5, 10),
}


def _underflowing_logits(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Examples get a logit gap of 1e4, 90, 120, 800 or 0 (in turn) against their target: from 90 on
    beyond float32's exp range, from 800 on beyond float64's."""
    dim = 0 if len(shape) == 1 else 1
    num_classes = shape[dim]
    z = logits(shape, seed=42, dtype=dtype)
    target = class_indices(shape, seed=42, ignore_index=None)
    moved, flat_target = z.movedim(dim, -1).reshape(-1, num_classes), target.reshape(-1)
    gaps = torch.tensor([1e4, 90.0, 120.0, 800.0, 0.0], dtype=dtype)
    for row in range(moved.shape[0]):
        moved[row, (flat_target[row] + 1) % num_classes] = moved[row, flat_target[row]] + gaps[row % len(gaps)]
    return moved.reshape(z.movedim(dim, -1).shape).movedim(-1, dim).contiguous(), target, dim


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", UNDERFLOW_SHAPES.values(), ids=UNDERFLOW_SHAPES.keys())
def test_underflowing_target_probability_gives_the_exact_cross_entropy(
    shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    """Where softmax(z)_t underflows to 0 (or a subnormal), c = -log p_t is recomputed as logsumexp(z) - z_t.

    c must still equal torch's cross-entropy.
    """
    from polyloss_torch._autograd import TargetCrossEntropy, softmax_kernel_is_faster

    z, target, dim = _underflowing_logits(shape, dtype)
    assert softmax_kernel_is_faster(z, dim) is (shape != UNDERFLOW_SHAPES["few-classes"])  # CPU: strided too
    z.requires_grad_(True)
    c, one_minus_p, _, _ = TargetCrossEntropy.apply(z, target, -100, dim)
    want = torch.nn.functional.cross_entropy(z.detach().double(), target, reduction="none")
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c.double(), want, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0.0)
    torch.testing.assert_close(one_minus_p.double(), -torch.expm1(-want), rtol=1e-6, atol=0.0)
    (c.sum() + one_minus_p.sum()).backward()
    z_ce = z.detach().clone().requires_grad_(True)
    native = torch.nn.functional.cross_entropy(z_ce, target, reduction="none")
    (native - torch.expm1(-native)).sum().backward()
    assert z.grad is not None
    assert z_ce.grad is not None
    torch.testing.assert_close(z.grad, z_ce.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", UNDERFLOW_SHAPES.values(), ids=UNDERFLOW_SHAPES.keys())
def test_host_underflow_branch_equals_the_branch_free_route(
    shape: tuple[int, ...], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU tensors skip the underflow fallback when nothing underflows; every other device computes and selects
    it. With underflowing rows both routes give the same c, 1 - p_t and gradients: bit for bit where both take
    the softmax kernel, to rounding for strided classes (off the host those take log_softmax instead)."""
    from polyloss_torch import _autograd

    z, target, dim = _underflowing_logits(shape, dtype)

    def run() -> tuple[torch.Tensor, ...]:
        leaf = z.clone().requires_grad_(True)
        c, one_minus_p, _, _ = _autograd.TargetCrossEntropy.apply(leaf, target, -100, dim)
        (c.sum() + (one_minus_p * one_minus_p).sum()).backward()
        assert leaf.grad is not None
        return c, one_minus_p, leaf.grad

    on_host = run()
    monkeypatch.setattr(_autograd, "branches_on_host", lambda tensor: False)
    branch_free = run()
    exact = {"rtol": 0.0, "atol": 0.0} if shape != UNDERFLOW_SHAPES["strided-classes"] else {}
    for got, want in zip(on_host, branch_free, strict=True):
        torch.testing.assert_close(got, want, **exact)
    torch.testing.assert_close(
        on_host[0].double(),
        torch.nn.functional.cross_entropy(z.double(), target, reduction="none"),
        rtol=1e-6,
        atol=0.0,
    )


@pytest.mark.filterwarnings(TORCH_JIT_WARNING)
def test_target_cross_entropy_function_all_outputs() -> None:
    """The custom Function on its own: every output differentiable, first and second order, with ignored rows."""
    from polyloss_torch._autograd import TargetCrossEntropy

    z = logits((5, 4, 3), seed=41, dtype=torch.float64).requires_grad_(True)
    target = class_indices((5, 4, 3), seed=41, ignore_index=-100)

    def outputs(x: torch.Tensor):
        return TargetCrossEntropy.apply(x, target, -100, 1)[:3]

    c, one_minus_p, p = outputs(z)
    torch.testing.assert_close(c, torch.nn.functional.cross_entropy(z, target, reduction="none"))
    torch.testing.assert_close(one_minus_p, -torch.expm1(-c))
    torch.testing.assert_close(p, torch.softmax(z, 1))
    assert gradcheck(outputs, (z,))
    assert gradgradcheck(outputs, (z,))


def _one_hot_floats(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32):
    """Exactly one-hot float rows along dim 1 (any shape), and their class indices."""
    index = class_indices(shape, seed=seed, ignore_index=None)
    rows = torch.nn.functional.one_hot(index, shape[1]).to(dtype)
    return rows.movedim(-1, 1) if len(shape) > 2 else rows, index


@pytest.mark.parametrize(
    "change",
    [
        "none",
        "tiny-extra-mass",
        "cancelling-pair",
        "two-ones",
        "row-below-one",
        "above-one",
        "nan",
        "zero-row",
        "float16",
    ],
)
def test_one_hot_test_is_exact(change: str) -> None:
    """Only rows that are exactly one-hot are read as class indices, whatever the other values are."""
    from polyloss_torch._impl import one_hot_index

    q, index = _one_hot_floats((2048, 20), seed=60)
    other = (index[2] + 1) % 20
    if change == "tiny-extra-mass":
        q[2, other] = torch.finfo(torch.float32).smallest_normal / 2**23  # the smallest subnormal
    elif change == "cancelling-pair":  # the row still sums to 1
        q[2, other], q[2, (index[2] + 2) % 20] = 0.5, -0.5
    elif change == "two-ones":
        q[2, other] = 1.0
    elif change == "row-below-one":
        q[2] *= 0.5
    elif change in ("above-one", "nan"):
        q[2, other] = 2.0 if change == "above-one" else float("nan")
    elif change == "zero-row":
        q[2] = 0.0
    elif change == "float16":
        q = q.half()
    got = one_hot_index(q, 1)
    if change == "none":
        assert got is not None
        assert torch.equal(got, index)
    else:
        assert got is None


def test_one_hot_test_reads_every_layout() -> None:
    """Maps with strided or contiguous classes, and unbatched rows, give their indices."""
    from polyloss_torch._impl import one_hot_index

    maps, index = _one_hot_floats((2, 21, 32, 32), seed=61)
    assert torch.equal(one_hot_index(maps.contiguous(), 1), index)
    assert torch.equal(one_hot_index(maps.contiguous(memory_format=torch.channels_last), 1), index)
    assert torch.equal(one_hot_index(maps[0, :, 3, 4], 0), index[0, 3, 4])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"weight": True},
        {"label_smoothing": 0.1},
        {"weight": True, "label_smoothing": 0.2, "reduction": "sum"},
        {"reduction": "none", "epsilon": 2.0},
        {"spec": PolySpec(epsilons=(1.0, 0.5), gamma=1.5, alpha=0.25)},
        {"spec": "per-class-alpha", "label_smoothing": 0.1, "weight": True},
        {"spec": "per-class-alpha", "reduction": "none"},
    ],
    ids=["poly1", "weight", "smoothing", "weight-smoothing-sum", "none", "poly-n-focal", "alpha-smoothing", "alpha"],
)
@pytest.mark.parametrize(
    "shape",
    [(2048, 20), (64, 600), (2, 21, 32, 32), (2, 21, 32, 33), (64, 20)],
    ids=["few", "many", "maps", "channels-last", "small-head"],
)
def test_one_hot_float_targets_take_the_class_index_route(
    options: dict, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One-hot float rows in host memory take the class-index kernels with the values and gradients of the
    dense route (the one every other device takes), including the probability-target mean (over examples)."""
    from polyloss_torch import _impl

    options = dict(options)
    q, _ = _one_hot_floats(shape, seed=62, dtype=torch.float64)
    if options.pop("weight", False):
        options["weight"] = class_weight(shape[1], seed=62, dtype=torch.float64)
    spec = options.pop("spec", None)
    if spec == "per-class-alpha":  # per-class alpha (scaling the loss, no normaliser) with torch's weight
        alpha = tuple(float(a) for a in torch.linspace(0.5, 2.0, shape[1]))
        spec = PolySpec(epsilons=(2.0,), alpha=alpha, label_smoothing=options.pop("label_smoothing", 0.0))
    z = logits(shape, seed=62, dtype=torch.float64)
    if shape[-1] == 33:
        z, q = (x.contiguous(memory_format=torch.channels_last) for x in (z, q))

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        leaf = z.clone().requires_grad_(True)
        loss = poly1_cross_entropy(leaf, q, **options) if spec is None else poly_loss(leaf, q, spec, **options)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
        return loss, grad

    calls = []
    by_index = _impl.softmax_indices
    monkeypatch.setattr(_impl, "softmax_indices", lambda *a, **k: calls.append(1) or by_index(*a, **k))
    routed = run()
    expected = [] if shape == (64, 20) else [1]  # small heads (below 32 768 numbers) stay dense
    assert calls == expected
    monkeypatch.setattr(_impl, "one_hot_index", lambda target, dim: None)
    dense = run()
    assert calls == expected  # the dense route did not reach the class-index kernels
    for got, want in zip(routed, dense, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("route", ["small", "function-few-or-strided", "function-many-classes"])
@pytest.mark.parametrize("rows", ["normalised", "unnormalised", "all-zero", "one-hot"])
def test_dense_poly1_values_and_gradients(rows: str, route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probability-target Poly-1, sum_c w_c q_c l(p_c) for any non-negative q, first and second order, on each
    route: the small-head composition and both branches of the fused Function (made to run at this size, in
    blocks of two rows). A retained graph gives the same gradient twice (the first backward writes over the
    upstream the forward kept)."""
    from polyloss_torch import _autograd, _impl

    monkeypatch.setattr(_autograd, "_BLOCK_BYTES", 2 * 20 * 8)  # two rows of either shape per block

    shape = (6, 20) if route == "function-many-classes" else (5, 4, 3)
    z = logits(shape, seed=50, dtype=torch.float64).requires_grad_(True)
    q = probabilities(shape, seed=50, dtype=torch.float64)
    if rows == "unnormalised":
        q = q * torch.linspace(0.2, 3.0, shape[0], dtype=torch.float64).view(-1, *[1] * (len(shape) - 1))
    elif rows == "all-zero":
        q[1:3] = 0.0
    elif rows == "one-hot":
        q = torch.nn.functional.one_hot(q.argmax(1), shape[1]).movedim(-1, 1).double()
    weight = class_weight(shape[1], seed=50, dtype=torch.float64)
    spec = PolySpec.poly1(2.5)
    calls: list[int] = []
    if route != "small":
        real = _impl.DensePoly1
        monkeypatch.setattr(_impl, "_SMALL", 0)
        monkeypatch.setattr(_impl, "one_hot_index", lambda target, dim: None)
        monkeypatch.setattr(
            _impl, "DensePoly1", type("Counted", (), {"apply": lambda *a: calls.append(1) or real.apply(*a)})
        )

    def fused(x):
        return poly_loss(x, q, spec, weight=weight, reduction="none")

    log_p = torch.log_softmax(z, 1)
    want = (q * weight.view(-1, *[1] * (len(shape) - 2)) * (-log_p + 2.5 * -torch.expm1(log_p))).sum(1)
    torch.testing.assert_close(fused(z), want)
    assert bool(calls) == (route != "small")
    for reduction in ("mean", "sum"):
        got = poly_loss(z, q, spec, weight=weight, reduction=reduction)
        torch.testing.assert_close(got, want.mean() if reduction == "mean" else want.sum())
    assert gradcheck(fused, (z,))
    assert gradgradcheck(fused, (z,))
    total = poly_loss(z, q, spec, weight=weight, reduction="sum")
    (first,) = torch.autograd.grad(total, z, retain_graph=True)
    (again,) = torch.autograd.grad(total, z)
    (composed,) = torch.autograd.grad(want.sum(), z)
    torch.testing.assert_close(first, composed)
    torch.testing.assert_close(again, composed)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("soft", [False, True])
def test_sigmoid_poly1_focal_function_gradients(gamma: float, soft: bool) -> None:
    """The fused sigmoid Poly-1 focal: gradient against the reference, first and second order."""
    z = logits((4, 3), seed=51, dtype=torch.float64)
    z[0, 0], z[1, 1] = 40.0, -40.0  # confident examples: 1 - p_t far below 1e-15
    t = probabilities((4, 3), seed=51, dtype=torch.float64) if soft else (torch.rand(4, 3) > 0.5).double()
    spec = PolySpec.poly1_focal(-0.5, gamma, 0.25)
    leaf = z.clone().requires_grad_(True)
    poly_loss(leaf, t, spec, family="sigmoid", reduction="sum").backward()
    want = reference.sigmoid_poly_loss_grad(z.numpy(), t.numpy(), spec)
    np.testing.assert_allclose(leaf.grad.numpy(), want, rtol=1e-10, atol=1e-15)
    fused = lambda x: poly_loss(x, t, spec, family="sigmoid", reduction="none")  # noqa: E731
    assert gradcheck(fused, (z.clone().requires_grad_(True),))
    assert gradgradcheck(fused, (z.clone().requires_grad_(True),))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("spec", [PolySpec.poly1(2.0), PolySpec(epsilons=(1.0, 0.5), gamma=1.5, alpha=0.5)], ids=str)
def test_large_inputs_take_the_function_and_agree_with_the_composition(reduction: str, spec: PolySpec) -> None:
    """Above the small-head threshold eager calls take TargetCrossEntropy; same values and gradients as the
    plain composition that small heads, torch.compile and torch.func use (weights and ignore_index included)."""
    import polyloss_torch._impl as impl

    shape = (8, 40, 13, 11)  # 45 760 logits, above impl._SMALL
    assert logits(shape, seed=60).numel() >= impl._SMALL
    z = logits(shape, seed=60, dtype=torch.float64)
    target = class_indices(shape, seed=60, ignore_index=255)
    weight = class_weight(40, seed=60, dtype=torch.float64)

    def value_and_grad():
        leaf = z.clone().requires_grad_(True)
        out = poly_loss(leaf, target, spec, weight=weight, ignore_index=255, reduction=reduction)
        out.sum().backward()
        return out.detach(), leaf.grad

    fused = value_and_grad()
    real = impl.eager
    impl.eager = lambda tensor: False
    try:
        composed = value_and_grad()
    finally:
        impl.eager = real
    torch.testing.assert_close(fused, composed)
