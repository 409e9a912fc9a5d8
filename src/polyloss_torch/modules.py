"""``torch.nn.Module`` classes: configuration only, validated once when set, computed by ``_validate`` + ``_impl``.

As in ``torch.nn.CrossEntropyLoss``, the class weights are a registered buffer,
so ``.to(device)``, ``.half()``, ``state_dict()``, pickling and ``deepcopy``
carry them along; every other option is an attribute shown by ``repr``. The
options that form the ``PolySpec`` (``epsilon``, ``label_smoothing``, ``gamma``,
``alpha``) are properties: assigning one validates it and rebuilds the spec
there, outside any ``torch.compile`` graph, so ``forward`` only reads it.

``torch.jit.script`` is not supported: ``forward`` runs Python-side checks and
the ``polyloss_core`` maths, which TorchScript cannot compile, so scripting
raises. ``torch.jit.trace``, ``torch.compile`` and ``torch.export`` work.
"""

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from polyloss_core import PolySpec, check_family, checks, poly1_spec

from . import _validate as V
from .functional import _loss

__all__ = ["Poly1CrossEntropyLoss", "Poly1FocalLoss", "PolyLoss"]


class _Option:
    """An option that forms the spec: ``check`` runs when it is assigned, then the module rebuilds ``spec``."""

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, module: Any, owner: type | None = None) -> Any:
        return self if module is None else module._options[self.name]

    def __set__(self, module: Any, value: Any) -> None:
        options = {**module._options, self.name: self.check(value)}
        module.spec = module._build_spec(**options)  # the options change only once the spec is valid
        module._options = options


class _IndexLoss(nn.Module):
    """What ``torch.nn.CrossEntropyLoss``-like modules hold: ``weight`` (a buffer), ``ignore_index``, ``reduction``."""

    weight: Tensor | None  # a registered buffer
    spec: PolySpec
    family = "softmax"

    def __init__(self, weight: Tensor | None, ignore_index: int, reduction: str) -> None:
        super().__init__()
        self.ignore_index = checks.check_int("ignore_index", ignore_index)
        self.reduction = checks.check_reduction(reduction)
        self.register_buffer("weight", V.weight(weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The loss of ``input`` logits against ``target``; see the class docstring."""
        return _loss(input, target, self.spec, self.family, self.weight, self.ignore_index, self.reduction)


class PolyLoss(_IndexLoss):
    r"""Any member of the PolyLoss family, configured by a ``PolySpec``.

    The module form of ``polyloss_torch.poly_loss``. With ``x = 1 - p``:

    $$
    l(p) = -x^{\gamma} \log p + \sum_{j=1}^{N} \epsilon_j\, x^{j + \gamma}
    $$

    applied to ``p = softmax(input)`` along dimension 1 (``family="softmax"``,
    per example \(\sum_c w_c q'_c\, l(p_c)\)) or to every element with
    ``p_t`` from ``sigmoid(input)`` (``family="sigmoid"``, scaled by
    \(\alpha_t\)). See ``poly_loss`` for the details.

    Args:
        spec: the loss (epsilons, gamma, alpha, label smoothing).
        family: ``"softmax"`` (default) or ``"sigmoid"``.
        weight: optional float tensor of shape ``(C,)`` scaling each class's loss,
            registered as a buffer. Default ``None``.
        ignore_index: class index to skip (class-index targets only). Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"`` (for the
            softmax family with class indices, the ``weight``-normalised mean of
            ``torch.nn.functional.cross_entropy``).

    Shape:
        - Input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
        - Target: class indices ``()``, ``(N)`` or ``(N, d1, ..., dK)``, or floating
          targets of the input's shape.
        - Output: a scalar for ``"mean"`` and ``"sum"``. For ``"none"``: softmax,
          the input's shape without dimension 1; sigmoid, the input's shape.

    Raises:
        TypeError: ``spec`` is not a ``PolySpec`` or ``weight`` is not a float tensor.
        ValueError: an unknown ``family`` or ``reduction``, or an ``alpha`` or
            ``weight`` that does not fit (checked here, before any call).

    Examples:
        >>> import torch
        >>> from polyloss_core import PolySpec
        >>> loss_fn = PolyLoss(PolySpec.poly1_focal(epsilon=1.0, gamma=2.0))
        >>> loss_fn
        PolyLoss(spec=PolySpec(epsilons=(1.0,), gamma=2.0, alpha=None, label_smoothing=0.0, allow_increasing=False), family='softmax', ignore_index=-100, reduction='mean')
        >>> loss_fn(torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([0]))
        tensor(0.0209)

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        spec: PolySpec,
        *,
        family: str = "softmax",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        check_family(spec, family, None if self.weight is None else self.weight.shape[0])
        self.spec = spec
        self.family = family

    def extra_repr(self) -> str:
        return (
            f"spec={self.spec!r}, family={self.family!r}, ignore_index={self.ignore_index}, "
            f"reduction={self.reduction!r}"
        )


class Poly1CrossEntropyLoss(_IndexLoss):
    r"""Poly-1 cross-entropy, a drop-in replacement for ``torch.nn.CrossEntropyLoss``.

    The module form of ``polyloss_torch.poly1_cross_entropy``: per example,
    with class weights \(w\) and smoothed targets \(q'\),

    $$
    \ell = \sum_c w_c\, q'_c \left(-\log p_c + \epsilon\,(1 - p_c)\right),
    \qquad p = \mathrm{softmax}(\text{input}),
    $$

    i.e. \(w_y (\mathrm{CE} + \epsilon (1 - p_y))\) for a class index ``y``.
    ``epsilon=0`` gives ``nn.CrossEntropyLoss`` exactly.

    Args:
        epsilon: coefficient of the added ``(1 - p_t)`` term, ``>= -1``. Default
            ``1.0`` (the paper suggests about ``2`` for ImageNet, ``-1`` for
            detection and segmentation).
        weight: optional float tensor of shape ``(C,)``, registered as a buffer.
            Default ``None``.
        ignore_index: target value that is skipped and left out of the mean.
            Default ``-100``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default ``"mean"``
            (``weight``-normalised for class indices, as in torch).
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.

    Shape:
        - Input: ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
        - Target: class indices ``()``, ``(N)`` or ``(N, d1, ..., dK)``, or class
          probabilities of the input's shape.
        - Output: a scalar, or the input's shape without dimension 1 for
          ``reduction="none"``.

    Raises:
        TypeError: ``epsilon`` or ``label_smoothing`` not a number, ``weight`` not
            a float tensor.
        ValueError: ``epsilon < -1``, ``label_smoothing`` outside ``[0, 1)`` or an
            unknown ``reduction`` (checked here, before any call).

    Examples:
        >>> import torch
        >>> loss_fn = Poly1CrossEntropyLoss(epsilon=2.0, ignore_index=255)
        >>> loss_fn
        Poly1CrossEntropyLoss(epsilon=2.0, ignore_index=255, reduction='mean', label_smoothing=0.0)
        >>> logits = torch.zeros(2, 4, 8, 8, requires_grad=True)  # (N, C, H, W) segmentation
        >>> target = torch.zeros(2, 8, 8, dtype=torch.long)
        >>> loss = loss_fn(logits, target)
        >>> round(loss.item(), 4)  # log(4) + 2 * (1 - 1/4)
        2.8863
        >>> loss.backward()

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511.
    """

    epsilon = _Option(checks.check_epsilon)
    label_smoothing = _Option(checks.check_label_smoothing)

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self._options = {"epsilon": 1.0, "label_smoothing": 0.0}
        self.epsilon, self.label_smoothing = epsilon, label_smoothing

    @staticmethod
    def _build_spec(epsilon: float, label_smoothing: float) -> PolySpec:
        return poly1_spec(epsilon, label_smoothing=label_smoothing)

    def extra_repr(self) -> str:
        return (
            f"epsilon={self.epsilon}, ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
            f"label_smoothing={self.label_smoothing}"
        )


class Poly1FocalLoss(nn.Module):
    r"""Poly-1 sigmoid focal loss with ``torchvision.ops.sigmoid_focal_loss`` conventions.

    The module form of ``polyloss_torch.poly1_focal_loss``: per element,

    $$
    \ell = \alpha_t \left(\mathrm{BCE}(z, t)\,(1 - p_t)^{\gamma}
    + \epsilon\,(1 - p_t)^{1 + \gamma}\right)
    $$

    with ``p = sigmoid(input)``, \(p_t = t p + (1 - t)(1 - p)\) and
    \(\alpha_t = \alpha t + (1 - \alpha)(1 - t)\) (weighting the ``epsilon``
    term too, unlike the paper's released code).

    Args:
        epsilon: coefficient of \((1 - p_t)^{1+\gamma}\), ``>= -1``. Default ``1.0``.
        alpha: weight of positives in ``[0, 1]``; ``None`` or negative disables.
            Default ``0.25``.
        gamma: focusing exponent ``>= 0``. Default ``2.0``.
        reduction: ``"none"`` (default, as torchvision) | ``"mean"`` | ``"sum"``.

    Shape:
        - Input: ``(*)``, any shape.
        - Target: ``(*)``, the input's shape, values in ``[0, 1]``.
        - Output: the input's shape for ``"none"``, otherwise a scalar.

    Raises:
        TypeError: a non-numeric ``epsilon``, ``alpha`` or ``gamma``.
        ValueError: ``epsilon < -1``, ``alpha > 1``, ``gamma < 0`` or an unknown
            ``reduction`` (checked here, before any call).

    Examples:
        >>> import torch
        >>> loss_fn = Poly1FocalLoss(epsilon=-1.0, reduction="sum")
        >>> loss_fn
        Poly1FocalLoss(epsilon=-1.0, alpha=0.25, gamma=2.0, reduction='sum')
        >>> loss_fn(torch.tensor([[3.0, -2.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        tensor(0.0371)

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511; Lin et al., "Focal Loss for
        Dense Object Detection", ICCV 2017.
    """

    spec: PolySpec
    epsilon = _Option(checks.check_epsilon)
    gamma = _Option(checks.check_gamma)
    # alpha reads back as given (torchvision's "negative disables" included); _build_spec checks and resolves it.
    alpha = _Option(lambda value: value)

    def __init__(
        self, *, epsilon: float = 1.0, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "none"
    ) -> None:
        super().__init__()
        self._options = {"epsilon": 1.0, "alpha": None, "gamma": 2.0}
        self.epsilon, self.alpha, self.gamma = epsilon, alpha, gamma
        self.reduction = checks.check_reduction(reduction)

    @staticmethod
    def _build_spec(epsilon: float, alpha: float | None, gamma: float) -> PolySpec:
        return poly1_spec(epsilon, gamma, checks.check_sigmoid_alpha(alpha, negative_disables=True))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """The per-element loss of ``input`` logits against ``target``, reduced as configured."""
        return _loss(input, target, self.spec, "sigmoid", None, -100, self.reduction)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
