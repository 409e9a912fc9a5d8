"""Modules hold configuration only: buffers, repr, state_dict, pickle, deepcopy, device moves."""

from __future__ import annotations

import copy
import io
import pickle

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

from .helpers import class_indices, class_weight, logits, probabilities

WEIGHT = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5])
SEG_SHAPE = (2, 5, 4, 3)


def _modules() -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """(id, module, target) for a configuration of every class that exercises the buffer."""
    index_target = class_indices(SEG_SHAPE, seed=0, ignore_index=255)
    return [
        (
            "poly1-ce",
            Poly1CrossEntropyLoss(epsilon=2.0, weight=WEIGHT, ignore_index=255, label_smoothing=0.1),
            index_target,
        ),
        (
            "poly-loss-softmax",
            PolyLoss(PolySpec.poly1_focal(1.0, 2.0, alpha=(1.0, 2.0, 1.0, 0.5, 1.0)), weight=WEIGHT, ignore_index=255),
            index_target,
        ),
        (
            "poly-loss-sigmoid",
            PolyLoss(PolySpec.poly1_focal(-1.0, 2.0, 0.25), family="sigmoid", weight=WEIGHT, reduction="sum"),
            probabilities(SEG_SHAPE, seed=0),
        ),
        (
            "poly1-focal",
            Poly1FocalLoss(epsilon=1.0, alpha=0.5, gamma=1.5, reduction="mean"),
            probabilities(SEG_SHAPE, 0),
        ),
    ]


MODULES = _modules()
IDS = [m[0] for m in MODULES]


def test_modules_call_their_functional_forms() -> None:
    z = logits(SEG_SHAPE, seed=1)
    target = class_indices(SEG_SHAPE, seed=1, ignore_index=255)
    module = Poly1CrossEntropyLoss(epsilon=2.0, weight=WEIGHT, ignore_index=255, label_smoothing=0.1)
    assert torch.equal(
        module(z, target),
        poly1_cross_entropy(z, target, epsilon=2.0, weight=WEIGHT, ignore_index=255, label_smoothing=0.1),
    )
    spec = PolySpec.poly_n(1.0, 0.5)
    assert torch.equal(
        PolyLoss(spec, reduction="none")(z, target.clamp(0, 4)),
        poly_loss(z, target.clamp(0, 4), spec, reduction="none"),
    )
    soft = probabilities(SEG_SHAPE, seed=1)
    assert torch.equal(Poly1FocalLoss(alpha=None)(z, soft), poly1_focal_loss(z, soft, alpha=None))


def test_repr_shows_the_configuration() -> None:
    assert repr(Poly1CrossEntropyLoss()) == (
        "Poly1CrossEntropyLoss(epsilon=1.0, ignore_index=-100, reduction='mean', label_smoothing=0.0)"
    )
    assert (
        repr(Poly1FocalLoss(alpha=None, gamma=1))
        == "Poly1FocalLoss(epsilon=1.0, alpha=None, gamma=1.0, reduction='none')"
    )
    # torchvision's "a negative alpha disables it": the module keeps the value given, the spec has no alpha.
    disabled = Poly1FocalLoss(alpha=-1)
    assert (disabled.alpha, disabled.spec.alpha) == (-1, None)
    assert repr(disabled) == "Poly1FocalLoss(epsilon=1.0, alpha=-1, gamma=2.0, reduction='none')"
    text = repr(PolyLoss(PolySpec.drop(1), family="sigmoid", reduction="sum"))
    assert text.startswith("PolyLoss(spec=PolySpec(epsilons=(-1.0,), gamma=0.0")
    assert text.endswith("family='sigmoid', ignore_index=-100, reduction='sum')")


@pytest.mark.parametrize(("name", "module", "target"), MODULES, ids=IDS)
def test_weight_is_a_buffer_in_state_dict(name: str, module: torch.nn.Module, target: torch.Tensor) -> None:
    buffers = dict(module.named_buffers())
    if isinstance(module, Poly1FocalLoss):
        assert buffers == {}
        assert module.state_dict() == {}
        return
    assert torch.equal(buffers["weight"], WEIGHT)
    assert list(module.state_dict()) == ["weight"]
    assert list(module.parameters()) == []


def test_state_dict_round_trip_restores_weight() -> None:
    source = Poly1CrossEntropyLoss(epsilon=2.0, weight=WEIGHT)
    target_module = Poly1CrossEntropyLoss(epsilon=2.0, weight=torch.ones(5))
    z = logits((6, 5), seed=2)
    target = class_indices((6, 5), seed=2)
    assert not torch.equal(source(z, target), target_module(z, target))
    target_module.load_state_dict(source.state_dict())
    assert torch.equal(source(z, target), target_module(z, target))
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    fresh = Poly1CrossEntropyLoss(epsilon=2.0, weight=torch.zeros(5))
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh(z, target), source(z, target))


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
@pytest.mark.parametrize(("name", "module", "target"), MODULES, ids=IDS)
def test_pickle_and_deepcopy_keep_behaviour(clone, name: str, module: torch.nn.Module, target: torch.Tensor) -> None:
    copied = clone(pickle.dumps(module)) if clone is pickle.loads else clone(module)
    z = logits(SEG_SHAPE, seed=3)
    assert repr(copied) == repr(module)
    assert torch.equal(copied(z, target), module(z, target))
    if getattr(module, "weight", None) is not None:
        assert copied.weight is not module.weight
        assert torch.equal(copied.weight, module.weight)


@pytest.mark.parametrize(("name", "module", "target"), MODULES, ids=IDS)
def test_to_dtype_and_device_move_the_buffer(name: str, module: torch.nn.Module, target: torch.Tensor) -> None:
    moved = copy.deepcopy(module).to(torch.float64)
    if getattr(module, "weight", None) is not None:
        assert moved.weight.dtype == torch.float64
    z = logits(SEG_SHAPE, seed=4, dtype=torch.float64)
    assert moved(z, target).dtype == torch.float64
    # The meta device holds no data: moving there proves every tensor moves, and shapes still propagate.
    meta = copy.deepcopy(module).to("meta")
    if getattr(module, "weight", None) is not None:
        assert meta.weight.device.type == "meta"
    out = meta(z.to("meta"), target.to("meta"))
    assert out.device.type == "meta"
    assert out.shape == module(z, target).shape


def test_weight_of_another_dtype_is_cast_to_the_computation() -> None:
    z = logits((6, 5), seed=5)
    target = class_indices((6, 5), seed=5)
    w64 = class_weight(5, seed=5, dtype=torch.float64)
    torch.testing.assert_close(
        poly1_cross_entropy(z, target, weight=w64), poly1_cross_entropy(z, target, weight=w64.float())
    )


def test_assigning_a_module_option_validates_it_and_changes_the_loss() -> None:
    """Options are validated once, when set (in __init__ or by assignment), never per call."""
    module = Poly1CrossEntropyLoss(epsilon=1.0)
    z = logits((6, 5), seed=6)
    target = class_indices((6, 5), seed=6)
    module.epsilon = 3.0
    module.label_smoothing = 0.1
    want = poly1_cross_entropy(z, target, epsilon=3.0, label_smoothing=0.1)
    assert torch.equal(module(z, target), want)
    with pytest.raises(ValueError, match=r"epsilon .* got epsilon=-7\.0"):
        module.epsilon = -7.0
    assert module.epsilon == 3.0
    assert torch.equal(module(z, target), want)
    focal = Poly1FocalLoss()
    focal.gamma = 3.0
    soft = probabilities((6, 5), seed=6)
    assert torch.equal(focal(z, soft), poly1_focal_loss(z, soft, gamma=3.0))
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        focal.alpha = 2.0
    assert focal.alpha == 0.25
