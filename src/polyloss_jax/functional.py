"""The public JAX losses: Python options checked by ``polyloss_core.checks``, a cached spec, ``_validate``, ``_impl``.

Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from polyloss_core import PolySpec, check_family, poly1_spec
from polyloss_core.checks import check_gamma, check_sigmoid_alpha

from . import _impl, _validate
from ._validate import Axis

ArrayLike = jax.typing.ArrayLike
Epsilon = float | jax.Array

__all__ = [
    "poly1_cross_entropy",
    "poly1_cross_entropy_with_integer_labels",
    "poly1_sigmoid_focal_loss",
    "poly_loss",
]


def poly_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    spec: PolySpec,
    *,
    family: str = "softmax",
    axis: Axis = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Any member of the PolyLoss family, per example (softmax) or per element (sigmoid).

    With ``x = 1 - p`` the loss of one probability ``p`` is:

        l(p) = -x^gamma log(p) + sum_{j=1..N} eps_j x^(j + gamma)

    where ``eps = spec.epsilons`` and ``gamma = spec.gamma``.

    Softmax family (``family="softmax"``), ``p = softmax(z)`` over the class axis:

        loss = sum_c w_c q'_c l(p_c),    q' = (1 - s) q + s / C

    ``q`` is the one-hot vector of an integer label or the given distribution,
    ``s = spec.label_smoothing`` and ``w_c`` is ``spec.alpha`` (one number or one
    weight per class; 1 when ``None``).

    Sigmoid family (``family="sigmoid"``), per element, ``p = sigmoid(z)``:

        loss = alpha_t (BCE(z, t') (1 - p_t)^gamma + sum_j eps_j (1 - p_t)^(j + gamma))
        t' = (1 - s) t + s / 2,   1 - p_t = t' (1 - p) + (1 - t') p,
        alpha_t = alpha t' + (1 - alpha) (1 - t')     (1 when spec.alpha is None)

    ``alpha_t`` scales the polynomial terms too; the paper's released code leaves
    them unweighted.

    Hard labels without smoothing take a fast path: the cross-entropy
    ``c = logsumexp(z) - z_y`` is computed exactly as
    ``optax.losses.softmax_cross_entropy_with_integer_labels`` does, and every
    member is an elementwise function of it (``log p_t = -c``,
    ``1 - p_t = -expm1(-c)``), so the polynomial costs next to nothing.

    16-bit inputs (float16, bfloat16) are computed in float32 and the loss is returned
    in float32, as mixed-precision training keeps losses: a float16 loss would overflow
    above 65504. Gradients with respect to the logits keep the logits' dtype.

    Args:
        logits: unnormalized log-probabilities, floating dtype, shape ``[..., C]``
            (the classes on ``axis``).
        labels: integer class indices of the per-example shape (the logits' shape
            without ``axis``), or floating labels broadcastable to the logits' shape:
            target distributions (softmax) or per-element targets in ``[0, 1]``
            (sigmoid; integer or boolean 0/1 targets of the logits' shape work too).
            In the sigmoid family integer labels of the per-example shape are class
            indices, one-hot along ``axis``.
        spec: the loss, e.g. ``PolySpec.poly1(1.0)`` or ``PolySpec.poly1_focal(1.0, 2.0, 0.25)``.
        family: ``"softmax"`` (default; one class per example) or ``"sigmoid"``
            (independent binary decisions).
        axis: the class axis, or a tuple of axes whose elements together are the
            classes (an integer label is then a flat index into that block, as in
            optax). Default ``-1``.
        where: optional boolean mask, broadcastable to the logits' shape (masks
            classes) or to the per-example shape (masks whole examples). Masked
            classes take no part in the softmax or the sum; examples with no
            class left (and masked sigmoid elements) give ``0``. Default ``None``.

    Shape:
        - logits: ``[..., C, ...]`` with the classes on ``axis``.
        - labels: the per-example shape ``[..., ...]`` (integer) or broadcastable
          to the logits' shape (floating).
        - output: the per-example shape (softmax) or the logits' shape (sigmoid).

    Returns:
        The unreduced loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: non-floating ``logits``, labels of another dtype kind, a
            non-boolean ``where``, a ``spec`` that is not a ``PolySpec`` or an ``axis``
            that is not an int or tuple of ints.
        ValueError: an unknown ``family``, an out-of-range ``axis``, mismatched
            shapes, a per-class ``alpha`` of the wrong length, or (for labels on
            the host: NumPy, Python or a JAX array on a CPU device) a label outside
            ``[0, C)`` or a sigmoid target outside ``[0, 1]``. Labels under ``jax.jit``
            or on an accelerator are never read (no transfer): such an example
            yields ``NaN`` instead, never a plausible number.

    Examples:
        >>> import jax.numpy as jnp
        >>> from polyloss_core import PolySpec
        >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
        >>> labels = jnp.array([0, 1])
        >>> loss = poly_loss(logits, labels, PolySpec.poly_n(1.0, 0.5))
        >>> [round(float(v), 4) for v in loss]
        [0.3383, 4.0135]
        >>> targets = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
        >>> poly_loss(logits, targets, PolySpec.poly1_focal(1.0, 2.0, 0.25), family="sigmoid").shape
        (2, 3)

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    return _loss(logits, labels, spec, None, family, axis, where)


def poly1_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, epsilon: Epsilon = 1.0, axis: Axis = -1, where: ArrayLike | None = None
) -> jax.Array:
    """Poly-1 softmax cross-entropy against probability labels.

    With ``p = softmax(z)`` over ``axis`` and ``p_t = sum_c q_c p_c``:

        loss = sum_c q_c (-log(p_c) + epsilon (1 - p_c)) = CE(q, p) + epsilon (1 - p_t)

    For any ``epsilon``, ``axis`` and ``where`` this equals
    ``optax.losses.poly_loss_cross_entropy``; with ``epsilon=0`` it is
    ``optax.losses.softmax_cross_entropy``. The default ``epsilon`` is ``1.0``
    (the paper's code), whereas optax defaults to ``2.0``. The paper suggests about
    ``+2`` for ImageNet-style classification and ``-1`` for detection and
    segmentation; tune it per task.

    Args:
        logits: unnormalized log-probabilities, floating dtype, shape ``[..., C]``.
        labels: floating target distributions (non-negative, summing to 1 over
            ``axis``), broadcastable to the logits' shape; e.g. one-hot rows.
        epsilon: the change of the first polynomial coefficient: a number ``>= -1``
            (checked), or a traced float scalar (``vmap`` over epsilons, a schedule
            under ``jit``; it cannot be checked, as in optax). Default ``1.0``.
        axis: class axis or tuple of axes. Default ``-1``.
        where: optional boolean mask broadcastable to the logits' shape (or to the
            per-example shape); masked classes are left out of the softmax and the
            sum, fully masked examples give ``0``. Default ``None``.

    Shape:
        - logits, labels: ``[..., C]``.
        - output: ``[...]``.

    Returns:
        The per-example loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: integer labels (use ``poly1_cross_entropy_with_integer_labels``),
            non-floating logits, a traced ``epsilon`` that is not a float scalar.
        ValueError: ``epsilon < -1``, mismatched shapes or a bad ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
        >>> [round(float(v), 4) for v in poly1_cross_entropy(logits, labels)]
        [0.5174, 2.5151]

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    return _poly1_softmax(logits, labels, "floating", epsilon, axis, where)


def poly1_cross_entropy_with_integer_labels(
    logits: ArrayLike, labels: ArrayLike, *, epsilon: Epsilon = 1.0, axis: Axis = -1, where: ArrayLike | None = None
) -> jax.Array:
    """Poly-1 softmax cross-entropy against integer class indices (a gather, never a one-hot).

    With ``c = logsumexp(z) - z_y`` the cross-entropy of the label ``y``:

        loss = -log(p_y) + epsilon (1 - p_y) = c + epsilon (1 - exp(-c))

    ``c`` is computed exactly as in
    ``optax.losses.softmax_cross_entropy_with_integer_labels``, which this
    function equals for ``epsilon=0``; the extra term is elementwise on ``c``
    (``1 - exp(-c)`` as ``-expm1(-c)``), so the cost over plain cross-entropy is
    negligible. The default ``epsilon`` is ``1.0``
    (``optax.losses.poly_loss_cross_entropy`` uses ``2.0``).

    Out-of-range labels: with labels on the host (NumPy, Python, a JAX array on a
    CPU device) a label outside ``[0, C)`` raises ``ValueError``; inside ``jax.jit``
    or ``vmap``, and for arrays on an accelerator (never copied to the host), that
    example's loss is ``NaN`` (its gradient is zero), so the error
    shows up in the reduced loss rather than as a plausible number.

    Args:
        logits: unnormalized log-probabilities, floating dtype, shape ``[..., C]``.
        labels: integer class indices in ``[0, C)`` with the per-example shape
            ``[...]``; with a tuple ``axis`` a flat index into the class block.
        epsilon: the change of the first polynomial coefficient: a number ``>= -1``
            (checked), or a traced float scalar (``vmap`` over epsilons, a schedule
            under ``jit``; it cannot be checked, as in optax). Default ``1.0``.
        axis: class axis or tuple of axes. Default ``-1``.
        where: optional boolean mask broadcastable to the logits' shape (or to the
            per-example shape); fully masked examples give ``0``. Default ``None``.

    Shape:
        - logits: ``[..., C]``; labels: ``[...]``.
        - output: ``[...]``.

    Returns:
        The per-example loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: non-integer labels, non-floating logits, a traced non-scalar ``epsilon``.
        ValueError: ``epsilon < -1``, mismatched shapes, a bad ``axis`` or (host labels)
            a label outside ``[0, C)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([0, 1])
        >>> loss = poly1_cross_entropy_with_integer_labels(logits, labels)
        >>> [round(float(v), 4) for v in loss]
        [0.5174, 3.8996]

    Reference: Leng et al., ICLR 2022, https://arxiv.org/abs/2204.12511 (Poly-1, section 3).
    """
    return _poly1_softmax(logits, labels, "integer", epsilon, axis, where)


def poly1_sigmoid_focal_loss(
    logits: ArrayLike, labels: ArrayLike, *, epsilon: Epsilon = 1.0, alpha: float | None = None, gamma: float = 2.0
) -> jax.Array:
    """Poly-1 sigmoid focal loss, per element (detection, multi-label).

    With ``p = sigmoid(z)``:

        loss = alpha_t (BCE(z, t) (1 - p_t)^gamma + epsilon (1 - p_t)^(1 + gamma))
        1 - p_t = t (1 - p) + (1 - t) p,   alpha_t = alpha t + (1 - alpha) (1 - t)

    (``alpha_t = 1`` when ``alpha`` is ``None``). With ``epsilon=0`` this equals ``optax.losses.sigmoid_focal_loss``. Note that
    ``alpha`` weights the polynomial term as well, following the project's
    definition; the paper's released code leaves that term unweighted.

    Args:
        logits: unnormalized log-odds, floating dtype, any shape.
        labels: targets in ``[0, 1]`` (binary or soft; floating, integer or
            boolean) broadcastable to the logits' shape, or integer class indices
            of the logits' shape without the last axis (one-hot along it).
        epsilon: coefficient of ``(1 - p_t)^(1 + gamma)``: a number ``>= -1``
            (checked) or a traced float scalar (unchecked). Default ``1.0``.
        alpha: weight of the positives in ``[0, 1]`` (negatives get ``1 - alpha``),
            or ``None`` for no weighting. Default ``None``.
        gamma: focusing exponent ``>= 0``. Default ``2.0``.

    Shape:
        - logits: ``[...]``; labels: broadcastable to ``[...]``.
        - output: ``[...]`` (the logits' shape).

    Returns:
        The per-element loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: non-floating logits, non-numeric labels, a traced ``alpha`` or
            ``gamma`` (they configure the compiled function).
        ValueError: ``epsilon < -1``, ``gamma < 0``, ``alpha`` outside ``[0, 1]``,
            mismatched shapes or (host labels) targets outside ``[0, 1]``; under ``jit``
            such elements give ``NaN``.

    Examples:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[2.0, -1.0], [0.0, 3.0]])
        >>> labels = jnp.array([[1.0, 0.0], [1.0, 0.0]])
        >>> loss = poly1_sigmoid_focal_loss(logits, labels, alpha=0.25)
        >>> [[round(float(v), 4) for v in row] for row in loss]
        [[0.0009, 0.0316], [0.0746, 2.723]]

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511;
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    return _loss(logits, labels, *_poly1(epsilon, check_gamma(gamma), check_sigmoid_alpha(alpha)), "sigmoid", -1, None)


# --------------------------------------------------------------------------- configuration to arrays
def _poly1(epsilon: Any, gamma: float = 0.0, alpha: float | None = None) -> tuple[PolySpec, jax.Array | None]:
    """A concrete epsilon goes into the (cached) spec; a traced one rides along as an array."""
    eps = _validate.epsilon(epsilon)
    if isinstance(eps, float):
        return poly1_spec(eps, gamma, alpha), None
    return poly1_spec(1.0, gamma, alpha), eps


def _poly1_softmax(logits: Any, labels: Any, kind: str, epsilon: Any, axis: Any, where: Any) -> jax.Array:
    """The two Poly-1 softmax functions: labels of the dtype ``kind`` the function takes, then ``_loss``."""
    _validate.label_kind(labels, kind)
    return _loss(logits, labels, *_poly1(epsilon), "softmax", axis, where)


def _loss(
    logits: Any, labels: Any, spec: PolySpec, epsilon: jax.Array | None, family: str, axis: Any, where: Any
) -> jax.Array:
    """Validate the arrays against the spec, then evaluate it (``epsilon``: a traced ``eps_1`` or ``None``)."""
    z = _validate.logits(logits)
    axes = _validate.axes(axis, z.shape)
    check_family(spec, family, math.prod(z.shape[a] for a in axes))
    y = _validate.as_array("labels", labels)
    mask = _validate.where(where, z.shape, axes)
    z = z.astype(_validate.compute_dtype(z.dtype))
    if epsilon is not None:
        epsilon = epsilon.astype(z.dtype)
    indices = _validate.labels(y, labels, z.shape, axes, family)
    if family == "softmax":
        return _impl.softmax(z, y, spec, axes, mask, epsilon)
    return _impl.sigmoid(z, y, spec, axes, mask, epsilon, indices)
