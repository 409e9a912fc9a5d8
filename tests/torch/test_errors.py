"""Bad input (SPEC section 6): clear exceptions that name the argument and show the bad value."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from polyloss_core import PolySpec
from polyloss_torch import (
    Poly1CrossEntropyLoss,
    Poly1FocalLoss,
    PolyLoss,
    poly1_cross_entropy,
    poly1_focal_loss,
    poly_loss,
)

Z = torch.zeros(3, 5)
T = torch.tensor([0, 1, 2])


@pytest.mark.parametrize("bad", [5, 7, -1, -3])
def test_out_of_range_class_index_raises_with_value(bad: int) -> None:
    target = torch.tensor([0, bad, 1])
    with pytest.raises(ValueError, match=rf"target contains class index {bad}\b.*\[0, 5\)"):
        poly1_cross_entropy(Z, target)


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
def test_out_of_range_checked_on_every_path(epsilon: float) -> None:
    """Plain CE, fast path, smoothing path, segmentation shapes and the sigmoid family all check."""
    seg = torch.zeros(2, 5, 3, 3)
    seg_target = torch.zeros(2, 3, 3, dtype=torch.long)
    seg_target[1, 2, 0] = 9
    with pytest.raises(ValueError, match="class index 9"):
        poly1_cross_entropy(seg, seg_target, epsilon=epsilon)
    with pytest.raises(ValueError, match="class index 9"):
        poly1_cross_entropy(seg, seg_target, epsilon=epsilon, label_smoothing=0.1)
    with pytest.raises(ValueError, match="class index 9"):
        poly_loss(seg, seg_target, PolySpec.poly1(epsilon), family="sigmoid")


def test_ignore_index_values_are_not_out_of_range() -> None:
    target = torch.tensor([0, 255, 4])
    loss = poly1_cross_entropy(Z, target, ignore_index=255, reduction="none")
    assert loss[1].item() == 0.0
    with pytest.raises(ValueError, match=r"class index 255, .*ignore_index=-100"):
        poly1_cross_entropy(Z, target)


def test_negative_label_is_only_allowed_when_it_is_ignore_index() -> None:
    with pytest.raises(ValueError, match="class index -100"):
        poly1_cross_entropy(Z, torch.tensor([0, -100, 1]), ignore_index=-1)
    assert poly1_cross_entropy(Z, torch.tensor([0, -1, 1]), ignore_index=-1, reduction="none")[1].item() == 0.0


@pytest.mark.parametrize(
    ("target", "pattern"),
    [
        (torch.tensor([0, 1]), r"class-index target must have shape \(3,\).*got \(2,\)"),
        (torch.zeros(3, 1, dtype=torch.long), r"class-index target must have shape \(3,\).*got \(3, 1\)"),
        (
            torch.zeros(3, 4),
            r"floating point target \(class probabilities\) must have shape \(3, 5\), the input's shape, got \(3, 4\)",
        ),
        (torch.zeros(5), r"must have shape \(3, 5\), the input's shape, got \(5,\)"),
    ],
)
def test_mismatched_target_shapes(target: torch.Tensor, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        poly1_cross_entropy(Z, target)


def test_segmentation_target_shape_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("must have shape (2, 4, 4)") + ".*got " + re.escape("(2, 4, 3)")):
        poly1_cross_entropy(torch.zeros(2, 5, 4, 4), torch.zeros(2, 4, 3, dtype=torch.long))


def test_sigmoid_target_shape_and_range() -> None:
    with pytest.raises(ValueError, match=r"target must have shape \(3, 5\), the input's shape, got \(3, 4\)"):
        poly1_focal_loss(Z, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 1\], got values in \[0.0, 2.0\]"):
        poly1_focal_loss(Z, torch.full((3, 5), 2.0).index_fill(0, torch.tensor([0]), 0.0))
    with pytest.raises(ValueError, match=r"\[0, 1\].*nan"):
        poly1_focal_loss(Z, torch.full((3, 5), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\], got values in \[3\.0, 3\.0\]"):
        poly_loss(Z, torch.full((3, 5), 3), PolySpec.focal(), family="sigmoid")


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"epsilon": -1.5}, ValueError, r"epsilon must be a finite number >= -1, got epsilon=-1\.5"),
        ({"epsilon": float("nan")}, ValueError, r"epsilon must be a finite number >= -1, got epsilon=nan"),
        ({"epsilon": float("inf")}, ValueError, r"epsilon .* got epsilon=inf"),
        ({"epsilon": "2"}, TypeError, r"epsilon must be a real number, got '2' of type str"),
        ({"epsilon": True}, TypeError, r"epsilon must be a real number, got True"),
        ({"epsilon": torch.tensor(1.0)}, TypeError, r"epsilon must be a real number.*Tensor"),
        ({"reduction": "avg"}, ValueError, r"reduction must be one of 'none', 'mean', 'sum', got reduction='avg'"),
        ({"reduction": None}, ValueError, r"reduction must be one of .*got reduction=None"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be in \[0, 1\), got label_smoothing=1\.0"),
        ({"label_smoothing": -0.1}, ValueError, r"label_smoothing must be in \[0, 1\), got label_smoothing=-0\.1"),
        ({"label_smoothing": "0.1"}, TypeError, r"label_smoothing must be a real number, got '0.1'"),
        ({"ignore_index": 1.0}, TypeError, r"ignore_index must be an int, got 1\.0"),
        ({"weight": torch.ones(4)}, ValueError, r"weight must have shape \(5,\), one entry per class, got \(4,\)"),
        (
            {"weight": torch.ones(5, dtype=torch.long)},
            TypeError,
            r"weight must have a floating point dtype, got torch\.int64",
        ),
        ({"weight": [1.0] * 5}, TypeError, r"weight must be a torch\.Tensor or None, got list"),
    ],
)
def test_bad_poly1_cross_entropy_options(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        poly1_cross_entropy(Z, T, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"epsilon": -2.0}, ValueError, r"epsilon must be a finite number >= -1, got epsilon=-2\.0"),
        ({"reduction": "average"}, ValueError, r"got reduction='average'"),
        ({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0, 1\), got label_smoothing=1\.5"),
        ({"weight": torch.ones(2, 2)}, ValueError, r"weight must have shape \(C,\).*got \(2, 2\)"),
        ({"ignore_index": "x"}, TypeError, r"ignore_index must be an int, got 'x'"),
    ],
)
def test_module_rejects_bad_configuration_at_construction(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Poly1CrossEntropyLoss(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"alpha": 1.5}, ValueError, r"alpha must be in \[0, 1\] \(or None / negative to disable\), got alpha=1\.5"),
        ({"alpha": "0.25"}, TypeError, r"alpha must be a real number, got '0.25'"),
        ({"gamma": -1.0}, ValueError, r"gamma must be >= 0, got gamma=-1\.0"),
        ({"gamma": None}, TypeError, r"gamma must be a real number, got None"),
        ({"epsilon": -1.01}, ValueError, r"epsilon must be a finite number >= -1, got epsilon=-1\.01"),
        ({"reduction": "batchmean"}, ValueError, r"got reduction='batchmean'"),
    ],
)
def test_bad_focal_options(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        poly1_focal_loss(Z, torch.zeros(3, 5), **kwargs)
    with pytest.raises(error, match=pattern):
        Poly1FocalLoss(**kwargs)


def test_bad_tensors() -> None:
    with pytest.raises(TypeError, match=r"input must have a floating point dtype, got torch\.int64"):
        poly1_cross_entropy(torch.zeros(3, 5, dtype=torch.long), T)
    with pytest.raises(TypeError, match=r"input must be a torch\.Tensor, got ndarray"):
        poly1_cross_entropy(np.zeros((3, 5)), T)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"input must have shape \(C,\) or \(N, C, d1, \.\.\., dK\), got a 0-dimensional"
    ):
        poly1_cross_entropy(torch.tensor(1.0), torch.tensor(0))
    with pytest.raises(
        TypeError, match=r"target must hold integer class indices or floating point targets, got dtype torch\.bool"
    ):
        poly1_cross_entropy(Z, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"target must be a torch\.Tensor, got list"):
        poly1_cross_entropy(Z, [0, 1, 2])  # type: ignore[arg-type]


def test_bad_spec_and_family() -> None:
    with pytest.raises(TypeError, match=r"spec must be a polyloss_core\.PolySpec, got dict"):
        poly_loss(Z, T, {"epsilons": (1.0,)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"family must be one of \('softmax', 'sigmoid'\), got 'softmx'"):
        poly_loss(Z, T, PolySpec.poly1(), family="softmx")
    with pytest.raises(ValueError, match=r"alpha has 3 per-class weights but the input has 5 classes"):
        poly_loss(Z, T, PolySpec(epsilons=(1.0,), alpha=(1.0, 2.0, 3.0)))
    with pytest.raises(ValueError, match=r"alpha must be a single number in \[0, 1\] for the sigmoid family"):
        poly_loss(Z, T, PolySpec(alpha=(1.0, 2.0, 3.0, 4.0, 5.0)), family="sigmoid")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\] for the sigmoid family, got 2\.0"):
        poly_loss(Z, T, PolySpec(alpha=2.0), family="sigmoid")


def test_poly_loss_module_checks_at_construction() -> None:
    with pytest.raises(ValueError, match="family must be one of"):
        PolyLoss(PolySpec.poly1(), family="binary")
    with pytest.raises(ValueError, match=r"alpha has 2 per-class weights but the input has 3 classes"):
        PolyLoss(PolySpec(alpha=(1.0, 2.0)), weight=torch.ones(3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        PolyLoss(PolySpec.poly1(), reduction="elementwise_mean")
    with pytest.raises(TypeError, match="spec must be a PolySpec"):
        PolyLoss("poly1")  # type: ignore[arg-type]


def test_invalid_specs_are_rejected_by_polyspec() -> None:
    """An increasing loss is a ValueError from the spec itself, before any tensor is seen."""
    with pytest.raises(ValueError, match="increases"):
        PolyLoss(PolySpec(epsilons=(-1.0, -1.0)))
