"""The sigmoid family: torchvision's focal-loss conventions, weights, class indices and reductions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyloss_core import PolySpec, reference
from polyloss_torch import poly1_focal_loss, poly_loss

from .helpers import logits, probabilities


def textbook_focal(z: torch.Tensor, t: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Lin et al.'s alpha-balanced sigmoid focal loss, as torchvision defines it (alpha < 0 disables)."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


@pytest.mark.parametrize("alpha", [0.25, 0.9, -1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True], ids=["binary", "soft"])
def test_epsilon_zero_is_the_sigmoid_focal_loss(alpha: float, gamma: float, soft: bool) -> None:
    z = logits((4, 3, 5), seed=0, dtype=torch.float64)
    t = probabilities((4, 3, 5), seed=0, dtype=torch.float64)
    if not soft:
        t = (t > 0.2).to(torch.float64)
    want = textbook_focal(z, t, alpha, gamma)
    for reduction, reduce in (("none", lambda x: x), ("mean", torch.mean), ("sum", torch.sum)):
        got = poly1_focal_loss(z, t, epsilon=0.0, alpha=alpha, gamma=gamma, reduction=reduction)
        torch.testing.assert_close(got, reduce(want), rtol=1e-12, atol=1e-14)


def test_alpha_none_and_negative_both_disable() -> None:
    z = logits((5, 4), seed=1)
    t = probabilities((5, 4), seed=1)
    assert torch.equal(poly1_focal_loss(z, t, alpha=None), poly1_focal_loss(z, t, alpha=-1))
    assert torch.equal(
        poly1_focal_loss(z, t, alpha=None),
        poly_loss(z, t, PolySpec.poly1_focal(1.0, 2.0), family="sigmoid", reduction="none"),
    )


def test_alpha_t_weights_the_epsilon_term_too() -> None:
    """SPEC section 3: alpha_t scales the polynomial term (the paper's released code does not)."""
    z = logits((6, 3), seed=2, dtype=torch.float64)
    t = (probabilities((6, 3), seed=2, dtype=torch.float64) > 0.3).to(torch.float64)
    eps, gamma, alpha = 2.0, 2.0, 0.25
    p_t = torch.sigmoid(z) * t + (1 - torch.sigmoid(z)) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    extra = poly1_focal_loss(z, t, epsilon=eps, alpha=alpha, gamma=gamma) - poly1_focal_loss(
        z, t, epsilon=0.0, alpha=alpha, gamma=gamma
    )
    torch.testing.assert_close(extra, alpha_t * eps * (1 - p_t) ** (1 + gamma), rtol=1e-10, atol=1e-14)


def test_integer_binary_targets_equal_float_targets() -> None:
    z = logits((5, 4, 3), seed=3)
    t = (probabilities((5, 4, 3), seed=3) > 0.25).long()
    torch.testing.assert_close(poly1_focal_loss(z, t), poly1_focal_loss(z, t.float()))
    torch.testing.assert_close(poly1_focal_loss(z, t.bool().to(torch.uint8)), poly1_focal_loss(z, t.float()))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_class_indices_with_ignore_index_and_weight(reduction: str) -> None:
    """Integer class indices mean one-hot along dimension 1; ignored positions vanish from the loss and the mean;
    weight[c] scales class c; the mean is over the remaining elements."""
    z = logits((3, 4, 2, 2), seed=4, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 2, 2), generator=torch.Generator().manual_seed(4))
    target[0, 0, 0] = -100
    target[2, 1, 1] = -100
    weight = torch.tensor([1.0, 0.5, 2.0, 0.25], dtype=torch.float64)
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    got = poly_loss(z, target, spec, family="sigmoid", weight=weight, reduction=reduction)

    keep = target != -100
    onehot = np.moveaxis(np.eye(4)[target.clamp_min(0).numpy()], -1, 1)
    per = reference.sigmoid_poly_loss(z.numpy(), onehot, spec) * weight.numpy().reshape(1, 4, 1, 1)
    per = np.where(np.expand_dims(keep.numpy(), 1), per, 0.0)
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / (keep.sum().item() * 4)}[reduction]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)


def test_label_smoothing_moves_targets_towards_one_half() -> None:
    z = logits((4, 3), seed=5, dtype=torch.float64)
    t = (probabilities((4, 3), seed=5, dtype=torch.float64) > 0.3).to(torch.float64)
    smoothed = poly_loss(z, t, PolySpec.poly1(1.0, label_smoothing=0.2), family="sigmoid", reduction="none")
    manual = poly_loss(z, 0.8 * t + 0.1, PolySpec.poly1(1.0), family="sigmoid", reduction="none")
    torch.testing.assert_close(smoothed, manual, rtol=1e-12, atol=1e-14)


def test_unbatched_input_and_class_index() -> None:
    z = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    spec = PolySpec.poly1_focal(1.0, 2.0, 0.25)
    got = poly_loss(z, torch.tensor(2), spec, family="sigmoid", reduction="none")
    want = reference.sigmoid_poly_loss(z.numpy(), np.array([0.0, 0.0, 1.0]), spec)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
