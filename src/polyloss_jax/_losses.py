"""PolyLoss for JAX with optax's calling conventions.

One functional form, ``poly_loss``, evaluates any ``PolySpec``;
the ``poly1_*`` functions only build a spec and call it. The polynomial itself
comes from ``polyloss_core.series``, so this module adds nothing but the
JAX-specific parts: log-probabilities, the label gather, masks and dtypes.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

import functools
import math
from typing import Any, cast

import jax
import jax.numpy as jnp

from polyloss_core import PolySpec, check_epsilon, check_family
from polyloss_core.series import focal_factor, poly_loss_from_log_prob, polynomial_term

from ._checks import (
    Axis,
    as_array,
    broadcasts_to,
    check_logits,
    check_where,
    compute_dtype,
    concrete,
    example_shape,
    normalize_axes,
    static_real,
)

__all__ = [
    "poly1_cross_entropy",
    "poly1_cross_entropy_with_integer_labels",
    "poly1_sigmoid_focal_loss",
    "poly_loss",
]


# --------------------------------------------------------------------------- public API
def poly_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    spec: PolySpec,
    *,
    family: str = "softmax",
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Any member of the PolyLoss family, per example (softmax) or per element (sigmoid).

    With ``x = 1 - p`` the loss of one probability ``p`` is::

        l(p) = -x^gamma log(p) + sum_{j=1..N} eps_j x^(j + gamma)

    where ``eps = spec.epsilons`` and ``gamma = spec.gamma``.

    Softmax family (``family="softmax"``), ``p = softmax(z)`` over the class axis::

        loss = sum_c w_c q'_c l(p_c),    q' = (1 - s) q + s / C

    ``q`` is the one-hot vector of an integer label or the given distribution,
    ``s = spec.label_smoothing`` and ``w_c`` is ``spec.alpha`` (one number or one
    weight per class; 1 when ``None``).

    Sigmoid family (``family="sigmoid"``), per element, ``p = sigmoid(z)``::

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
            shapes, a per-class ``alpha`` of the wrong length, or (for concrete
            arrays) a label outside ``[0, C)`` or a sigmoid target outside ``[0, 1]``.
            Under ``jax.jit`` label values cannot be inspected: such an example
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
    z = check_logits(logits)
    axes = normalize_axes(axis, z.shape)
    num_classes = math.prod(z.shape[a] for a in axes)
    check_family(spec, family, num_classes)
    y = as_array("labels", labels)
    mask = check_where(where, z.shape, axes)
    work = compute_dtype(z.dtype)
    if family == "softmax":
        out = _softmax(z.astype(work), y, labels, spec, axes, mask)
    else:
        out = _sigmoid(z.astype(work), y, labels, spec, axes, mask)
    return out


def poly1_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float = 1.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Poly-1 softmax cross-entropy against probability labels.

    With ``p = softmax(z)`` over ``axis`` and ``p_t = sum_c q_c p_c``::

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
        epsilon: the change of the first polynomial coefficient, a Python number
            ``>= -1``. Default ``1.0``.
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
            non-floating logits, a traced ``epsilon``.
        ValueError: ``epsilon < -1``, mismatched shapes or a bad ``axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> [round(float(v), 4) for v in poly1_cross_entropy(logits, labels)]
        [0.5174, 3.8996]

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    dtype = _dtype_of(labels)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"labels must be floating-point probabilities, got dtype {dtype}; "
            "use poly1_cross_entropy_with_integer_labels for class indices"
        )
    return poly_loss(logits, labels, _poly1_spec(_epsilon(epsilon)), axis=axis, where=where)


def poly1_cross_entropy_with_integer_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float = 1.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Poly-1 softmax cross-entropy against integer class indices (a gather, never a one-hot).

    With ``c = logsumexp(z) - z_y`` the cross-entropy of the label ``y``::

        loss = -log(p_y) + epsilon (1 - p_y) = c + epsilon (1 - exp(-c))

    ``c`` is computed exactly as in
    ``optax.losses.softmax_cross_entropy_with_integer_labels``, which this
    function equals for ``epsilon=0``; the extra term is elementwise on ``c``
    (``1 - exp(-c)`` as ``-expm1(-c)``), so the cost over plain cross-entropy is
    negligible. The default ``epsilon`` is ``1.0``
    (``optax.losses.poly_loss_cross_entropy`` uses ``2.0``).

    Out-of-range labels: with concrete arrays a label outside ``[0, C)`` raises
    ``ValueError``; inside ``jax.jit`` (or ``vmap``) the values cannot be checked
    and that example's loss is ``NaN`` (its gradient is zero), so the error shows
    up in the reduced loss rather than as a plausible number.

    Args:
        logits: unnormalized log-probabilities, floating dtype, shape ``[..., C]``.
        labels: integer class indices in ``[0, C)`` with the per-example shape
            ``[...]``; with a tuple ``axis`` a flat index into the class block.
        epsilon: the change of the first polynomial coefficient, a Python number
            ``>= -1``. Default ``1.0``.
        axis: class axis or tuple of axes. Default ``-1``.
        where: optional boolean mask broadcastable to the logits' shape (or to the
            per-example shape); fully masked examples give ``0``. Default ``None``.

    Shape:
        - logits: ``[..., C]``; labels: ``[...]``.
        - output: ``[...]``.

    Returns:
        The per-example loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: non-integer labels, non-floating logits, a traced ``epsilon``.
        ValueError: ``epsilon < -1``, mismatched shapes, a bad ``axis`` or (eagerly)
            a label outside ``[0, C)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> labels = jnp.array([0, 1])
        >>> [round(float(v), 4) for v in poly1_cross_entropy_with_integer_labels(logits, labels)]
        [0.5174, 3.8996]

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    dtype = _dtype_of(labels)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"labels must be integer class indices, got dtype {dtype}; use poly1_cross_entropy for probabilities"
        )
    return poly_loss(logits, labels, _poly1_spec(_epsilon(epsilon)), axis=axis, where=where)


def poly1_sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float = 1.0,
    alpha: float | None = None,
    gamma: float = 2.0,
) -> jax.Array:
    """Poly-1 sigmoid focal loss, per element (detection, multi-label).

    With ``p = sigmoid(z)``::

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
        epsilon: coefficient of ``(1 - p_t)^(1 + gamma)``, a Python number
            ``>= -1``. Default ``1.0``.
        alpha: weight of the positives in ``[0, 1]`` (negatives get ``1 - alpha``),
            or ``None`` for no weighting. Default ``None``.
        gamma: focusing exponent ``>= 0``. Default ``2.0``.

    Shape:
        - logits: ``[...]``; labels: broadcastable to ``[...]``.
        - output: ``[...]`` (the logits' shape).

    Returns:
        The per-element loss in the logits' dtype (float32 for 16-bit logits).

    Raises:
        TypeError: non-floating logits, non-numeric labels, a traced ``epsilon``,
            ``alpha`` or ``gamma``.
        ValueError: ``epsilon < -1``, ``gamma < 0``, ``alpha`` outside ``[0, 1]``,
            mismatched shapes or (eagerly) targets outside ``[0, 1]``; under ``jit``
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
    eps = _epsilon(epsilon)
    g = static_real("gamma", gamma)
    a = None if alpha is None else static_real("alpha", alpha)
    return poly_loss(logits, labels, _poly1_focal_spec(eps, g, a), family="sigmoid")


# --------------------------------------------------------------------------- configuration
def _dtype_of(value: Any) -> Any:
    """The dtype of an array (NumPy, JAX or tracer) without converting it."""
    dtype = getattr(value, "dtype", None)
    return as_array("labels", value).dtype if dtype is None else dtype


def _epsilon(value: Any) -> float:
    return check_epsilon(static_real("epsilon", value))


@functools.lru_cache(maxsize=256)
def _poly1_spec(epsilon: float) -> PolySpec:
    # Specs validate themselves on construction; caching keeps eager calls cheap.
    return PolySpec.poly1(epsilon)


@functools.lru_cache(maxsize=256)
def _poly1_focal_spec(epsilon: float, gamma: float, alpha: float | None) -> PolySpec:
    return PolySpec.poly1_focal(epsilon, gamma, alpha)


# --------------------------------------------------------------------------- shared maths
def _power_guard(x: jax.Array, gamma: float) -> tuple[jax.Array, jax.Array | None]:
    """``x`` made safe for ``x ** gamma`` and the mask of entries left untouched.

    With a fractional ``gamma`` the derivatives of ``x ** gamma`` blow up at
    ``x = 0`` (the first for ``gamma < 1``, the second for ``gamma < 2``), and
    ``inf * 0`` in the chain rule gives NaN gradients and Hessians. Entries with
    ``x <= sqrt(tiny)`` are therefore evaluated at ``x = 1`` and their loss is set
    to its limit ``0`` afterwards (a "double where": both branches have finite
    derivatives). The loss dropped there is of the order of ``sqrt(tiny)`` (about
    ``1e-19`` in float32, ``1e-154`` in float64), far below the rounding of any
    loss value.
    """
    if gamma == int(gamma):
        return x, None
    keep = x > math.sqrt(float(jnp.finfo(x.dtype).tiny))
    return jnp.where(keep, x, jnp.ones((), x.dtype)), keep


def _poly_of_log_prob(log_p: jax.Array, spec: PolySpec) -> jax.Array:
    """``l(p)`` elementwise from ``log p``, with ``1 - p = -expm1(log p)`` (polynomial from ``polyloss_core``)."""
    one_minus_p, keep = _power_guard(-jnp.expm1(log_p), spec.gamma)
    loss = poly_loss_from_log_prob(log_p, one_minus_p, spec)
    return loss if keep is None else jnp.where(keep, loss, jnp.zeros((), loss.dtype))


def _class_axis_last(
    z: jax.Array, y: jax.Array, mask: jax.Array | None, axes: tuple[int, ...], labels_per_class: bool
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Move a tuple of class axes to the end and flatten them into one (optax's layout)."""
    batch = tuple(d for d in range(z.ndim) if d not in axes)
    perm = batch + axes
    lead = tuple(z.shape[d] for d in batch)

    def flat(a: jax.Array) -> jax.Array:
        return a.transpose(perm).reshape((*lead, -1))

    if labels_per_class:
        y = flat(jnp.broadcast_to(y, z.shape))
    if mask is not None:
        mask = flat(jnp.broadcast_to(mask, z.shape))
    return flat(z), y, mask


# --------------------------------------------------------------------------- softmax family
def _softmax(
    z: jax.Array, y: jax.Array, raw_labels: Any, spec: PolySpec, axes: tuple[int, ...], mask: jax.Array | None
) -> jax.Array:
    integer = jnp.issubdtype(y.dtype, jnp.integer)
    if integer:
        want = example_shape(z.shape, axes)
        if y.shape != want:
            raise ValueError(
                f"integer labels must have the per-example shape {want} (logits shape {z.shape} without "
                f"axis {axes if len(axes) > 1 else axes[0]}), got {y.shape}"
            )
    elif jnp.issubdtype(y.dtype, jnp.floating):
        if not broadcasts_to(y.shape, z.shape):
            raise ValueError(f"probability labels must broadcast to the logits' shape {z.shape}, got {y.shape}")
    else:
        raise TypeError(f"labels must be integer class indices or floating probabilities, got dtype {y.dtype}")

    num_classes = math.prod(z.shape[a] for a in axes)
    if integer:
        _check_label_values(raw_labels, num_classes)
        y = _wide_index(y)
    if len(axes) > 1:
        z, y, mask = _class_axis_last(z, y, mask, axes, labels_per_class=not integer)
        ax = z.ndim - 1
    else:
        ax = axes[0]

    row_kept = None
    if mask is not None:
        # Examples whose classes are all masked are evaluated unmasked (finite values and
        # gradients) and zeroed at the end.
        row_kept = jnp.any(mask, axis=ax, keepdims=True)
        mask = mask | ~row_kept

    weights = _class_weights(spec, num_classes, ax, z.ndim, z.dtype)
    if integer:
        loss = _softmax_integer(z, y, spec, ax, mask, weights)
    else:
        loss = _softmax_dense(z, y.astype(z.dtype), spec, ax, mask, weights)
    if row_kept is not None:
        loss = jnp.where(jnp.squeeze(row_kept, ax), loss, jnp.zeros((), loss.dtype))
    return loss


def _class_weights(spec: PolySpec, num_classes: int, ax: int, ndim: int, dtype: Any) -> jax.Array | float | None:
    """``spec.alpha`` as a per-class array along ``ax``, a number, or ``None``."""
    if spec.alpha is None:
        return None
    if isinstance(spec.alpha, tuple):
        shape = [num_classes if d == ax else 1 for d in range(ndim)]
        return jnp.asarray(spec.alpha, dtype=dtype).reshape(shape)
    return spec.alpha


def _softmax_integer(
    z: jax.Array,
    y: jax.Array,
    spec: PolySpec,
    ax: int,
    mask: jax.Array | None,
    weights: jax.Array | float | None,
) -> jax.Array:
    num_classes = z.shape[ax]
    index = jnp.expand_dims(y, ax)
    # The same cross-entropy optax computes: normaliser minus the label's logit.
    label_logit = jnp.take_along_axis(z, index, axis=ax, mode="clip").squeeze(ax)
    log_normalizer = jax.nn.logsumexp(z, axis=ax, where=mask)
    cross_entropy = log_normalizer - label_logit
    # log p_y = -CE exactly, so every member is an elementwise function of CE.
    loss = _poly_of_log_prob(-cross_entropy, spec)
    if isinstance(weights, jax.Array):
        loss = loss * jnp.take(weights.reshape(-1), y, mode="clip")
    elif weights is not None:
        loss = loss * weights
    smoothing = spec.label_smoothing
    if smoothing:
        # q' = (1 - s) onehot(y) + s / C: the uniform part needs l(p_c) for every class.
        log_p = z - jnp.expand_dims(log_normalizer, ax)
        if mask is not None:
            log_p = jnp.where(mask, log_p, jnp.zeros((), z.dtype))
        per_class = _poly_of_log_prob(log_p, spec)
        if weights is not None:
            per_class = per_class * weights
        uniform = jnp.sum(per_class, axis=ax, where=mask)
        loss = (1.0 - smoothing) * loss + (smoothing / num_classes) * uniform
    valid = (y >= 0) & (y < num_classes)
    return jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))


def _softmax_dense(
    z: jax.Array,
    q: jax.Array,
    spec: PolySpec,
    ax: int,
    mask: jax.Array | None,
    weights: jax.Array | float | None,
) -> jax.Array:
    smoothing = spec.label_smoothing
    if smoothing:
        q = (1.0 - smoothing) * q + smoothing / z.shape[ax]
    # z - logsumexp(z) rather than jax.nn.log_softmax: the same values, but XLA turns
    # its reverse pass into about half the work on CPU.
    log_p = z - jax.nn.logsumexp(z, axis=ax, where=mask, keepdims=True)
    if mask is not None:
        # Masked classes get p = 1 (loss 0) so nothing non-finite reaches the maths.
        log_p = jnp.where(mask, log_p, jnp.zeros((), z.dtype))
    per_class = q * _poly_of_log_prob(log_p, spec)
    if weights is not None:
        per_class = per_class * weights
    return jnp.sum(per_class, axis=ax, where=mask)


def _check_label_values(raw_labels: Any, num_classes: int) -> None:
    """Eagerly: every class index in ``[0, num_classes)``. Tracers (jit, vmap) are not inspected.

    The labels as the caller passed them are checked, so a NumPy int64 label that
    would wrap when JAX converts it to int32 is still caught.
    """
    values = concrete(raw_labels)
    if values is None or values.size == 0:
        return
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
        raise ValueError(f"labels must be class indices in [0, {num_classes}), got {int(bad.flat[0])}")


# --------------------------------------------------------------------------- sigmoid family
def _sigmoid(
    z: jax.Array, y: jax.Array, raw_labels: Any, spec: PolySpec, axes: tuple[int, ...], mask: jax.Array | None
) -> jax.Array:
    per_example = example_shape(z.shape, axes)
    is_int = jnp.issubdtype(y.dtype, jnp.integer)
    valid: jax.Array | None
    if is_int and y.ndim == len(per_example) and y.ndim < z.ndim:
        if y.shape != per_example:
            raise ValueError(
                f"labels (integer class indices) must have the per-example shape {per_example} (logits shape {z.shape} "
                f"without axis {axes if len(axes) > 1 else axes[0]}), got {y.shape}"
            )
        num_classes = math.prod(z.shape[a] for a in axes)
        _check_label_values(raw_labels, num_classes)
        t, valid = _one_hot_targets(_wide_index(y), z, axes, num_classes)
    elif is_int or jnp.issubdtype(y.dtype, jnp.floating) or y.dtype == jnp.bool_:
        if not broadcasts_to(y.shape, z.shape):
            raise ValueError(f"labels must broadcast to the logits' shape {z.shape}, got {y.shape}")
        values = None if y.dtype == jnp.bool_ else concrete(raw_labels)
        if values is not None and values.size:
            outside = values[~((values >= 0) & (values <= 1))]
            if outside.size:
                raise ValueError(f"labels must be targets in [0, 1], got {float(outside.flat[0])!r}")
        t = y.astype(z.dtype)
        valid = None if y.dtype == jnp.bool_ else (t >= 0) & (t <= 1)
    else:
        raise TypeError(f"labels must be numeric targets or integer class indices, got dtype {y.dtype}")

    smoothing = spec.label_smoothing
    if smoothing:
        t = (1.0 - smoothing) * t + 0.5 * smoothing
    log_p = jax.nn.log_sigmoid(z)
    log_not_p = jax.nn.log_sigmoid(-z)
    bce = -(t * log_p + (1.0 - t) * log_not_p)
    # 1 - p_t = t (1 - p) + (1 - t) p: both terms non-negative, no cancellation.
    x, keep = _power_guard(t * jax.nn.sigmoid(-z) + (1.0 - t) * jax.nn.sigmoid(z), spec.gamma)
    factor = focal_factor(x, spec.gamma)
    loss = bce if isinstance(factor, float) else bce * factor
    if any(spec.epsilons):
        loss = loss + polynomial_term(x, spec)
    if keep is not None:
        loss = jnp.where(keep, loss, jnp.zeros((), loss.dtype))
    if spec.alpha is not None:
        alpha = cast(float, spec.alpha)  # check_family allows only one number here
        loss = loss * (alpha * t + (1.0 - alpha) * (1.0 - t))
    loss = jnp.broadcast_to(loss, z.shape)
    if valid is not None:
        loss = jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))
    if mask is not None:
        loss = jnp.where(mask, loss, jnp.zeros((), loss.dtype))
    return loss


def _wide_index(y: jax.Array) -> jax.Array:
    """Class indices in at least 32 bits, so comparisons with the class count cannot overflow."""
    return y.astype(jnp.int32) if jnp.iinfo(y.dtype).bits < 32 else y


def _one_hot_targets(
    y: jax.Array, z: jax.Array, axes: tuple[int, ...], num_classes: int
) -> tuple[jax.Array, jax.Array]:
    """One-hot targets along ``axes`` (flat index in the given axis order) and the per-row validity."""
    flat_index: Any = 0
    stride = 1
    for a in reversed(axes):
        shape = [z.shape[d] if d == a else 1 for d in range(z.ndim)]
        flat_index = flat_index + jax.lax.broadcasted_iota(y.dtype, shape, a) * stride
        stride *= z.shape[a]
    expanded = jnp.expand_dims(y, sorted(axes))
    t = (expanded == flat_index).astype(z.dtype)
    valid = (expanded >= 0) & (expanded < num_classes)
    return t, valid
