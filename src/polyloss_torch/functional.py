"""Functional PolyLoss for PyTorch: ``poly_loss``, ``poly1_cross_entropy`` and ``poly1_focal_loss``.

Everything follows ``torch.nn.functional`` conventions: arguments are
``(input, target)``, classes sit on dimension 1 of ``(N, C, d1, ..., dK)``
inputs (dimension 0 of an unbatched ``(C,)`` input) and ``reduction`` is one of
``"none"``, ``"mean"`` or ``"sum"``. The polynomial itself is evaluated by
``polyloss_core.series``, so every framework adapter computes the same
numbers.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyloss_core import PolySpec, check_family, checks, poly1_spec

from . import _impl, _tensor_parallel
from . import _validate as V

__all__ = ["poly1_cross_entropy", "poly1_focal_loss", "poly_loss"]


def _loss(
    input: Tensor,
    target: Tensor,
    spec: PolySpec,
    family: str,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    epsilon: float | None = None,
) -> Tensor:
    """Tensor checks (``_validate``) and maths (``_impl``) for already-checked Python arguments."""
    if family == "softmax" and _tensor_parallel.is_dtensor(input):  # class-sharded logits: no gather
        return _tensor_parallel.softmax_loss(input, target, spec, weight, ignore_index, reduction, epsilon)
    dim, indices, dtype = V.layout(input, target, family)
    num_classes = input.shape[dim]
    check_family(spec, family, num_classes if family == "softmax" else None)
    V.weight_for(weight, num_classes)
    z = input if input.dtype == dtype else input.to(dtype)
    if weight is not None:
        weight = weight.to(z.dtype)  # like torch, no silent copy to another device
    checked = family == "sigmoid" and not indices and V.unit_interval(target)
    if family == "softmax" and not indices:
        V.probability_ignore_index(ignore_index)
        return _impl.softmax_dense(z, target.to(z.dtype), spec, weight, reduction, dim, epsilon)
    labels = target.long() if indices and target.dtype != torch.int64 else target
    try:
        if family == "sigmoid":
            return _impl.sigmoid(
                z, labels, spec, weight, ignore_index, reduction, dim, indices=indices, checked=checked, epsilon=epsilon
            )
        return _impl.softmax_indices(z, labels, spec, weight, ignore_index, reduction, dim, epsilon)
    except (IndexError, RuntimeError) as error:  # a kernel's bounds check: name the bad label (CPU)
        explained = V.explain_index_error(error, target, num_classes, ignore_index)
        if explained is error:
            raise
        raise explained from error


# poly1_cross_entropy's checked options, memoised per (type, value) of plain Python numbers and strings
# (immutable, so a hit is the checks' own answer): a repeated call costs one dict lookup.
_PLAIN = (float, int)
_POLY1_OPTIONS: dict[tuple[Any, ...], tuple[PolySpec, int, str, float]] = {}


def poly_loss(
    input: Tensor,
    target: Tensor,
    spec: PolySpec,
    *,
    family: str = "softmax",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Any member of the PolyLoss family described by a ``PolySpec``.

    With ``x = 1 - p`` the loss of one probability ``p`` is

    $$
    l(p) = -x^{\gamma} \log p + \sum_{j=1}^{N} \epsilon_j\, x^{j + \gamma}
    $$

    (``spec.epsilons`` are the \(\epsilon_j\), ``spec.gamma`` is \(\gamma\)).

    * ``family="softmax"``: ``p = softmax(input)`` over dimension 1 and the loss of
      one example is \(\sum_c w_c q'_c\, l(p_c)\) with the smoothed target
      \(q' = (1 - s) q + s / C\) and class weight \(w_c\) = ``weight[c]``
      times ``spec.alpha`` (a number or one entry per class). For a class-index
      target this is \(w_y\, l(p_y)\).
    * ``family="sigmoid"``: every element is an independent binary decision with
      ``p = sigmoid(input)``, target \(t' = (1 - s) t + s / 2\),
      \(p_t = t' p + (1 - t')(1 - p)\) and
      \(\alpha_t = \alpha t' + (1 - \alpha)(1 - t')\):
      \(\alpha_t \left(\mathrm{BCE}(z, t')\, x_t^{\gamma} + \sum_j \epsilon_j x_t^{j+\gamma}\right)\)
      with \(x_t = 1 - p_t\), times ``weight[c]`` along dimension 1.
      ``alpha_t`` multiplies the polynomial term too; the paper's released code
      leaves that term unweighted.

    Args:
        input: logits of shape ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dK)``;
            any floating dtype (float16 and bfloat16 are computed and returned in
            float32, as ``torch.autocast`` does for losses).
        target: integer class indices in ``[0, C)`` (or ``ignore_index``) of the
            input's shape without dimension 1, or floating targets of the input's
            shape: class probabilities for the softmax family, per-element targets
            in ``[0, 1]`` for the sigmoid family. For the sigmoid family integer
            class indices mean a one-hot target along dimension 1.
        spec: the loss: epsilons, gamma, alpha and label smoothing.
        family: ``"softmax"`` (default; one class per example) or ``"sigmoid"``
            (independent binary decisions, e.g. detection or multi-label).
        weight: optional float tensor of shape ``(C,)``, a weight per class that
            multiplies the whole loss of that class, polynomial term included.
            Default ``None`` (all ones).
        ignore_index: class index whose examples contribute no loss and no
            gradient and are left out of the ``"mean"``. Only used with class-index
            targets. Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``. For the
            softmax family with class-index targets, ``"mean"`` divides by the
            summed ``weight`` of the non-ignored targets (by their count without
            ``weight``), as ``torch.nn.functional.cross_entropy`` does; with
            probability targets it divides by the number of examples. For the
            sigmoid family it divides by the number of (non-ignored) elements.
            ``spec.alpha`` never enters the denominator.

    Shape:
        - input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` with ``K >= 1``.
        - target: class indices ``()``, ``(N)`` or ``(N, d1, ..., dK)``; or floating
          targets with the input's shape.
        - output: a scalar for ``"mean"`` and ``"sum"``. For ``"none"``: softmax,
          the input's shape without dimension 1; sigmoid, the input's shape.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` of the wrong type or dtype,
            or ``spec`` not a ``PolySpec``.
        ValueError: an unknown ``family`` or ``reduction``, mismatched shapes, a
            class index outside ``[0, C)`` that is not ``ignore_index``, sigmoid
            targets outside ``[0, 1]``, or an ``alpha`` that does not fit the family.

    Note:
        No value is read back from an accelerator. A class index outside ``[0, C)``
        fails in the gather kernel's own bounds check, as in ``F.cross_entropy``:
        on CPU it is reported as a ``ValueError`` naming the value, on an
        accelerator as the kernel's device-side assertion. Sigmoid targets are
        range-checked only when eager on CPU (host memory, no sync); elsewhere an
        element whose target is outside ``[0, 1]`` gets a NaN loss.

    Examples:
        >>> import torch
        >>> from polyloss_core import PolySpec
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> poly_loss(logits, target, PolySpec.poly_n(1.0, 0.5), reduction="none")
        tensor([0.4787, 0.2188])
        >>> poly_loss(logits, target, PolySpec.focal(gamma=2.0), family="sigmoid").shape
        torch.Size([])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    return _loss(
        input,
        target,
        spec,
        family,
        V.weight(weight),
        checks.check_int("ignore_index", ignore_index),
        checks.check_reduction(reduction),
    )


def poly1_cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Poly-1 cross-entropy: cross-entropy plus ``epsilon * (1 - p_t)``.

    A drop-in replacement for ``torch.nn.functional.cross_entropy``. Per
    example, with class weights \(w\) and smoothed targets
    \(q' = (1 - s) q + s / C\),

    $$
    \ell = \sum_c w_c\, q'_c \left(-\log p_c + \epsilon\,(1 - p_c)\right),
    \qquad p = \mathrm{softmax}(\text{input}),
    $$

    which for a class index ``y`` without smoothing is the paper's
    \(w_y\,(\mathrm{CE} + \epsilon (1 - p_y))\). With ``epsilon=0`` this *is*
    ``F.cross_entropy`` (same kernel) for every argument combination.

    The paper suggests trying ``epsilon`` around ``+2`` for ImageNet-style
    classification and ``-1`` for detection and segmentation; tune it per task.

    Args:
        input: logits, ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dK)``, any floating
            dtype (float16 and bfloat16 are computed and returned in float32, as
            ``torch.autocast`` does for losses).
        target: class indices in ``[0, C)`` (or ``ignore_index``) of shape ``()``,
            ``(N)`` or ``(N, d1, ..., dK)``; or class probabilities of the input's shape.
        epsilon: the coefficient added to the first polynomial term, ``>= -1``.
            Default ``1.0``.
        weight: optional float tensor of shape ``(C,)``; scales the whole loss of
            each class, polynomial term included. Default ``None``.
        ignore_index: target value that contributes nothing and is left out of
            the mean (class indices only). Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``: with
            class indices, divided by the summed ``weight`` of the non-ignored
            targets (their count without ``weight``); with probabilities, divided by
            the number of examples, exactly as ``F.cross_entropy``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.

    Shape:
        - input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` with ``K >= 1``.
        - target: ``()``, ``(N)`` or ``(N, d1, ..., dK)`` class indices, or the
          input's shape for probabilities.
        - output: a scalar for ``"mean"`` and ``"sum"``; the input's shape without
          dimension 1 for ``"none"``.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``epsilon`` not a number, or tensors of the wrong dtype.
        ValueError: ``epsilon < -1``, ``label_smoothing`` outside ``[0, 1)``, an
            unknown ``reduction``, mismatched shapes, or a class index outside
            ``[0, C)`` that is not ``ignore_index``.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> target = torch.tensor([0, 2])
        >>> poly1_cross_entropy(logits, target, epsilon=1.0)
        tensor(0.3346)
        >>> bool(poly1_cross_entropy(logits, target, epsilon=0.0) == F.cross_entropy(logits, target))
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (4).
    """
    plain = type(epsilon) in _PLAIN and type(label_smoothing) in _PLAIN and type(ignore_index) is int
    key = (type(epsilon), epsilon, type(label_smoothing), label_smoothing, ignore_index, reduction)
    options = _POLY1_OPTIONS.get(key) if plain and type(reduction) is str else None
    if options is None:
        options = (
            poly1_spec(label_smoothing=checks.check_label_smoothing(label_smoothing)),
            checks.check_int("ignore_index", ignore_index),
            checks.check_reduction(reduction),
            checks.check_epsilon(epsilon),
        )
        if plain:
            V.remember(_POLY1_OPTIONS, key, options)
    spec, ignore_index, reduction, epsilon = options
    return _loss(input, target, spec, "softmax", V.weight(weight), ignore_index, reduction, epsilon)


def poly1_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float = 1.0,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    r"""Poly-1 sigmoid focal loss, with ``torchvision.ops.sigmoid_focal_loss`` conventions.

    Every element is an independent binary decision with ``p = sigmoid(input)``,
    \(p_t = t p + (1 - t)(1 - p)\) and
    \(\alpha_t = \alpha t + (1 - \alpha)(1 - t)\):

    $$
    \ell = \alpha_t \left(\mathrm{BCE}(z, t)\,(1 - p_t)^{\gamma}
    + \epsilon\,(1 - p_t)^{1 + \gamma}\right)
    $$

    With ``epsilon=0`` it equals torchvision's ``sigmoid_focal_loss``. Unlike the
    paper's released code, \(\alpha_t\) also weights the ``epsilon`` term, so
    positives and negatives are balanced the same way in both terms.

    Args:
        input: logits of any shape, e.g. ``(N, C)`` or ``(N, C, H, W)``.
        target: targets in ``[0, 1]`` of the input's shape (``1`` for the positive
            class), floating or integer; integer class indices of the input's shape
            without dimension 1 mean one-hot along dimension 1.
        epsilon: coefficient of \((1 - p_t)^{1+\gamma}\), ``>= -1``. Default ``1.0``;
            the paper uses ``-1`` for COCO detection.
        alpha: weight of positives in ``[0, 1]`` (negatives get ``1 - alpha``);
            ``None`` or a negative number disables the weighting. Default ``0.25``.
        gamma: focusing exponent, ``>= 0``. Default ``2.0``.
        reduction: ``"none"`` (default) | ``"mean"`` | ``"sum"``.

    Shape:
        - input: ``(*)``, any number of dimensions.
        - target: ``(*)``, the input's shape.
        - output: the input's shape for ``"none"``, otherwise a scalar.

    Returns:
        The loss: float64 for float64 input, float32 otherwise.

    Raises:
        TypeError: ``epsilon`` not a number, or tensors of the wrong dtype.
        ValueError: ``epsilon < -1``, ``alpha > 1``, ``gamma < 0``, an unknown
            ``reduction``, mismatched shapes, or targets outside ``[0, 1]``.

    Examples:
        >>> import torch
        >>> logits = torch.tensor([[3.0, -2.0], [0.0, 1.0]])
        >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> poly1_focal_loss(logits, target, epsilon=1.0, reduction="none")
        tensor([[5.3989e-05, 2.6230e-03],
                [2.2372e-01, 1.0528e-02]])

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (5); focal loss:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    spec = poly1_spec(1.0, checks.check_gamma(gamma), checks.check_sigmoid_alpha(alpha, negative_disables=True))
    return _loss(
        input, target, spec, "sigmoid", None, -100, checks.check_reduction(reduction), checks.check_epsilon(epsilon)
    )
