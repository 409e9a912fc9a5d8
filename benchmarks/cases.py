"""What every framework benchmarks: the problem shapes, the loss variants and their inputs.

The shapes are written the PyTorch way, classes on dimension 1 (``(N, C)``,
``(N, C, H, W)``); Keras and JAX get the same problem with the classes last
(``(N, H, W, C)``), their own convention. The detection shape ``(B, A, K)`` is
images x anchors x classes of independent sigmoid decisions, so its layout is
the same everywhere. Inputs come from NumPy with fixed seeds, so all three
frameworks see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1.0  # every Poly-1 variant, the paper's code default
POLY_N_EPSILONS = (1.0, 0.5, 0.25)  # Poly-3: eps_1..eps_3
GAMMA = 2.0  # focal exponent
ALPHA = 0.25  # focal class balance (Keras' and torchvision's default)
SMOOTHING = 0.1
FOREGROUND = 0.1  # share of anchors with an object in the detection targets


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    dims: tuple[int, ...]  # classes on dimension 1 (softmax) or last (sigmoid detection)
    family: str  # "softmax" or "sigmoid"

    @property
    def elements(self) -> int:
        return int(np.prod(self.dims))

    @property
    def num_classes(self) -> int:
        return self.dims[1] if self.family == "softmax" else self.dims[-1]

    def layout(self, channels_last: bool) -> tuple[int, ...]:
        """The logits' shape with the classes on dimension 1 or, for ``channels_last``, on the last one."""
        if self.family == "sigmoid" or len(self.dims) == 2 or not channels_last:
            return self.dims
        return (self.dims[0], *self.dims[2:], self.dims[1])


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    family: str
    labels: str  # "index", "one-hot", "soft" or "binary": what our loss and the native one receive
    target: float | None  # the ratio the variant must stay within, where the project promises one


VARIANTS: tuple[Variant, ...] = (
    Variant("poly1-int", "Poly-1 CE, integer labels", "softmax", "index", 1.05),
    Variant("poly1-onehot", "Poly-1 CE, one-hot probability labels", "softmax", "one-hot", 1.05),
    Variant("poly1-soft", "Poly-1 CE, soft probability labels", "softmax", "soft", None),
    Variant("poly1-smooth", f"Poly-1 CE, label smoothing {SMOOTHING}", "softmax", "index", None),
    Variant("poly3-int", "Poly-3 (N = 3), integer labels", "softmax", "index", None),
    Variant("poly1-focal-softmax", "Poly-1 focal, softmax", "softmax", "index", None),
    Variant("poly1-focal-sigmoid", "Poly-1 focal, sigmoid", "sigmoid", "binary", None),
)
VARIANTS_BY_KEY = {variant.key: variant for variant in VARIANTS}

FULL_SHAPES: tuple[Shape, ...] = (
    Shape("classification", "classification", (4096, 1000), "softmax"),
    Shape("large-vocab", "large vocabulary", (2048, 32000), "softmax"),
    Shape("segmentation", "segmentation", (8, 21, 128, 128), "softmax"),
    Shape("many-small", "many small examples", (65536, 10), "softmax"),
    # RetinaNet on a 512 x 512 image: 9 anchors on 64^2 + 32^2 + 16^2 + 8^2 + 4^2 positions.
    Shape("detection", "dense detection (sigmoid)", (8, 49104, 80), "sigmoid"),
    # Issue 12's targets: a detection batch of 4000 anchors, many tiny sigmoid rows, small heads (per-call cost).
    Shape("detection-4000", "detection, 4000 anchors (sigmoid)", (8, 4000, 80), "sigmoid"),
    Shape("sigmoid-many-small", "many small rows (sigmoid)", (1, 65536, 10), "sigmoid"),
    Shape("small-head-32", "small head, batch 32", (32, 10), "softmax"),
    Shape("small-head-256", "small head, batch 256", (256, 10), "softmax"),
)
QUICK_SHAPES: tuple[Shape, ...] = (
    FULL_SHAPES[0],
    Shape("detection-1", "dense detection, one image", (1, 49104, 80), "sigmoid"),
)
DRY_SHAPES: tuple[Shape, ...] = (
    Shape("tiny-classification", "tiny classification", (16, 7), "softmax"),
    Shape("tiny-segmentation", "tiny segmentation", (2, 5, 3, 4), "softmax"),
    Shape("tiny-detection", "tiny detection", (2, 6, 3), "sigmoid"),
)
SHAPE_SETS = {"full": FULL_SHAPES, "quick": QUICK_SHAPES, "dry": DRY_SHAPES}
ALL_SHAPES = {shape.key: shape for shapes in SHAPE_SETS.values() for shape in shapes}


def spec_for(variant_key: str) -> Any:
    """The ``PolySpec`` of a variant that every framework runs through its generic ``poly_loss``."""
    from polyloss_core import PolySpec  # imported late: the caller has made src importable by now

    if variant_key == "poly3-int":
        return PolySpec.poly_n(*POLY_N_EPSILONS)
    if variant_key == "poly1-focal-softmax":
        return PolySpec.poly1_focal(EPSILON, GAMMA, ALPHA)
    raise KeyError(f"variant {variant_key!r} has no generic spec")


SPEC_LABELS = {"poly3-int": "poly_loss(PolySpec.poly_n)", "poly1-focal-softmax": "poly_loss(PolySpec.poly1_focal)"}


def groups(mode: str) -> list[tuple[Shape, Variant]]:
    """Every (shape, variant) pair of a run: softmax variants on softmax shapes, sigmoid on sigmoid ones."""
    return [(shape, variant) for shape in SHAPE_SETS[mode] for variant in VARIANTS if variant.family == shape.family]


def make_inputs(shape: Shape, variant: Variant, *, channels_last: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 ``logits`` plus the labels the variant needs, as NumPy arrays.

    Softmax variants get ``index`` (int64 class indices) and either ``one-hot``
    (float32) or, for the soft variant, ``soft`` (float32 distributions over the
    class axis); the sigmoid one gets ``binary`` (0/1 float32 detection targets:
    a tenth of the anchors hold one object class).
    """
    rng = np.random.default_rng(seed)
    dims = shape.layout(channels_last)
    logits = rng.normal(scale=2.0, size=dims).astype(np.float32)
    out = {"logits": logits}
    if shape.family == "sigmoid":
        boxes, anchors, classes = dims
        target = np.zeros(dims, np.float32)
        has_object = rng.random((boxes, anchors)) < FOREGROUND
        label = rng.integers(0, classes, size=(boxes, anchors))
        b, a = np.nonzero(has_object)
        target[b, a, label[b, a]] = 1.0
        out["binary"] = target
        return out
    axis = len(dims) - 1 if channels_last else 1
    num_classes = dims[axis]
    index = rng.integers(0, num_classes, size=tuple(d for i, d in enumerate(dims) if i != axis))
    out["index"] = index
    if variant.labels != "soft":  # Keras' categorical losses take one-hot rows for hard labels
        one_hot = np.zeros(dims, np.float32)
        np.put_along_axis(one_hot, np.expand_dims(index, axis), 1.0, axis=axis)
        out["one-hot"] = one_hot
    else:
        scores = rng.normal(size=dims).astype(np.float32)
        scores -= scores.max(axis=axis, keepdims=True)
        weights = np.exp(scores)
        out["soft"] = weights / weights.sum(axis=axis, keepdims=True)
    return out
