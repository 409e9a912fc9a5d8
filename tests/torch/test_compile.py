"""torch.compile(fullgraph=True): no graph break, same values and gradients as eager."""

from __future__ import annotations

import pytest
import torch

from polyloss_core import PolySpec
from polyloss_torch import Poly1CrossEntropyLoss, Poly1FocalLoss, PolyLoss, poly1_cross_entropy, poly1_focal_loss

from .helpers import TORCH_JIT_WARNING, class_indices, class_weight, logits, probabilities

pytestmark = pytest.mark.filterwarnings(TORCH_JIT_WARNING)
SEG = (2, 5, 4, 3)


def _cases():
    index = class_indices(SEG, seed=0, ignore_index=255)
    soft = probabilities(SEG, seed=0)
    weight = class_weight(5, seed=0)
    return [
        ("poly1-ce", Poly1CrossEntropyLoss(epsilon=2.0, weight=weight, ignore_index=255), index),
        ("poly1-ce-smoothing", Poly1CrossEntropyLoss(epsilon=-0.5, ignore_index=255, label_smoothing=0.1), index),
        ("poly1-ce-probabilities", Poly1CrossEntropyLoss(epsilon=1.0, reduction="sum"), soft),
        ("poly-n-focal", PolyLoss(PolySpec(epsilons=(1.0, 0.5), gamma=0.5), ignore_index=255, reduction="none"), index),
        (
            "sigmoid-class-index",
            PolyLoss(PolySpec.poly1_focal(1.0, 2.0, 0.25), family="sigmoid", ignore_index=255),
            index,
        ),
        ("poly1-focal", Poly1FocalLoss(reduction="mean"), soft),
    ]


CASES = _cases()


def _value_and_grad(fn, z: torch.Tensor, target: torch.Tensor):
    leaf = z.detach().clone().requires_grad_(True)
    out = fn(leaf, target)
    (grad,) = torch.autograd.grad(out.sum(), leaf)
    return out.detach(), grad


@pytest.mark.parametrize(("name", "module", "target"), CASES, ids=[c[0] for c in CASES])
def test_modules_trace_without_graph_breaks(name: str, module: torch.nn.Module, target: torch.Tensor) -> None:
    """Dynamo + AOTAutograd trace forward and backward in one graph (fullgraph=True raises on any break)."""
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    z = logits(SEG, seed=1)
    want, want_grad = _value_and_grad(module, z, target)
    got, got_grad = _value_and_grad(compiled, z, target)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-7)  # float32 rounding of a cancelling sum


def test_functional_forms_inside_a_compiled_step() -> None:
    torch._dynamo.reset()
    soft = probabilities((6, 4), seed=2)

    def step(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return poly1_cross_entropy(z, target, epsilon=2.0) + poly1_focal_loss(z, soft, alpha=None, reduction="sum")

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    z = logits((6, 4), seed=2)
    target = class_indices((6, 4), seed=2)
    want, want_grad = _value_and_grad(step, z, target)
    got, got_grad = _value_and_grad(compiled, z, target)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


def test_inductor_segmentation_step_and_out_of_range_label() -> None:
    """The default backend compiles Poly-1 CE on a segmentation batch; an out-of-range label, which the
    skipped host-side check cannot see inside the graph, is still an error: the kernel's bounds assertion."""
    torch._dynamo.reset()
    module = Poly1CrossEntropyLoss(epsilon=1.0, weight=class_weight(5, seed=3), ignore_index=255)
    compiled = torch.compile(module, fullgraph=True)
    z = logits(SEG, seed=3)
    target = class_indices(SEG, seed=3, ignore_index=255)
    want, want_grad = _value_and_grad(module, z, target)
    got, got_grad = _value_and_grad(compiled, z, target)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-7)

    bad = target.clone()
    bad[0, 1, 1] = 7
    with pytest.raises(ValueError, match="class index 7"):
        module(z, bad)  # eager: the host-side check
    with pytest.raises(RuntimeError, match="index out of bounds"):
        compiled(z, bad)
