"""torch.compile with its default backend (Inductor, generated C++ on CPU): the losses compile and agree with eager.

The other compile tests use ``backend="aot_eager"`` (the same graphs, no code generation)
so they stay fast; this one runs the real code generator once, on a training step that
calls a class-index loss, a probability-target loss, the sigmoid focal loss and the fused
linear head together.
"""

from __future__ import annotations

import torch

from polyloss_torch import linear_poly1_cross_entropy, poly1_cross_entropy, poly1_focal_loss


def test_one_inductor_compiled_step_matches_eager() -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(24, 16, generator=gen)
    weight = torch.randn(50, 16, generator=gen)
    bias = torch.randn(50, generator=gen)
    target = torch.randint(0, 50, (24,), generator=gen)
    target[3] = -100
    soft = torch.softmax(torch.randn(24, 50, generator=gen), dim=1)
    binary = (torch.rand(24, 50, generator=gen) < 0.1).float()

    def step(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        logits = hidden @ weight.T + bias
        return (
            poly1_cross_entropy(logits, target, epsilon=2.0)
            + poly1_cross_entropy(logits, soft, epsilon=-0.5)
            + poly1_focal_loss(logits, binary, epsilon=1.0, reduction="mean")
            + linear_poly1_cross_entropy(hidden, weight, target, bias=bias, epsilon=1.0, chunk_size=7)
        )

    def value_and_grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
        out = fn(*leaves)
        return out.detach(), torch.autograd.grad(out, leaves)

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    got, got_grads = value_and_grads(compiled)
    want, want_grads = value_and_grads(step)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for name, g, w in zip(("hidden", "weight", "bias"), got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
