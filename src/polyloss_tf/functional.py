"""Functional forms of the Keras PolyLosses: ``(y_true, y_pred)`` in, unreduced loss out.

Like ``keras.losses.categorical_crossentropy`` and friends, these return one
value per example (the class axis is reduced) and apply no sample weights or
reduction; the loss classes in ``polyloss_tf.losses`` add those. The
exception is ``poly_loss`` with ``family="sigmoid"``, which returns one value
per element so that detection and multi-label code can reduce as it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import keras
from keras import ops

from polyloss_core import PolySpec, check_family, checks, poly1_spec

from . import _impl, _validate

# --------------------------------------------------------------------------- configuration
_Function = TypeVar("_Function", bound=Callable[..., Any])
#: Keras' registration (``keras.saving``), typed so that checkers and editors keep each function's signature.
_serializable = cast(Callable[[_Function], _Function], keras.saving.register_keras_serializable(package="polyloss"))


_UNSET: Any = object()  # named_spec without apply_class_balancing: every named loss but the binary focal one


def named_spec(
    epsilon: Any,
    gamma: Any = 0.0,
    alpha: Any = None,
    label_smoothing: Any = 0.0,
    apply_class_balancing: Any = _UNSET,
) -> PolySpec:
    """The spec of a named loss (``poly1_spec``, cached), each argument checked by core under its Keras name.

    ``apply_class_balancing`` is the binary focal loss' own: there ``alpha`` is checked always (as Keras
    does) and applies only with ``apply_class_balancing``.
    """
    if apply_class_balancing is not _UNSET:
        alpha = checks.check_sigmoid_alpha(alpha)
        alpha = alpha if checks.check_bool("apply_class_balancing", apply_class_balancing) else None
    elif alpha is not None and not isinstance(alpha, (int, float)):
        alpha = tuple(alpha.tolist() if hasattr(alpha, "tolist") else alpha)
    epsilon, gamma = checks.check_epsilon(epsilon), checks.check_gamma(gamma)
    return poly1_spec(epsilon, gamma, alpha, checks.check_label_smoothing(label_smoothing))


def check_ignore_class(ignore_class: Any, family: str = "softmax") -> int | None:
    if ignore_class is None:
        return None
    if family != "softmax":
        raise ValueError(f"ignore_class applies to the softmax family only, got family={family!r}")
    return checks.check_int("ignore_class", ignore_class)


def _named(
    y_true: Any,
    y_pred: Any,
    spec: PolySpec,
    family: str,
    expect: str,
    from_logits: Any,
    axis: Any,
    ignore_class: Any = None,
) -> Any:
    """A named function's body after its spec: the call options checked, then ``unreduced``.

    The sigmoid ones average over ``axis``, as Keras' binary losses do.
    """
    from_logits, axis = checks.check_bool("from_logits", from_logits), checks.check_int("axis", axis)
    ignore_class = check_ignore_class(ignore_class)
    return unreduced(y_true, y_pred, spec, family, from_logits, axis, ignore_class, expect, mean=family == "sigmoid")


# --------------------------------------------------------------------------- the shared body
def unreduced(
    y_true: Any,
    y_pred: Any,
    spec: PolySpec,
    family: str,
    from_logits: bool,
    axis: int,
    ignore_class: int | None = None,
    expect: str | None = None,
    mean: bool = False,
) -> Any:
    """Validated arguments and spec in, unreduced loss out: ``_validate`` the tensors, then ``_impl``.

    Shared by every function here and every class of ``polyloss_tf.losses``
    (which validate their arguments once, in ``__init__``). Half precision is
    computed and returned in float32 (Keras' mixed-precision convention).
    """
    y_pred, y_true = _validate.predictions(y_pred), _validate.labels(y_true)
    ax = _validate.class_axis(axis, _validate.static_shape(y_pred))
    num_classes = int(y_pred.shape[ax])
    check_family(spec, family, num_classes)
    kind, y = _validate.layout(y_true, y_pred, ax, expect)
    if keras.backend.standardize_dtype(y_pred.dtype) in ("float16", "bfloat16"):
        y_pred = ops.cast(y_pred, "float32")
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    if family == "sigmoid":
        if kind == "index":
            checked = _validate.index_values_checked(y, num_classes, None)
            loss = _impl.sigmoid_index(y, y_pred, spec, from_logits=from_logits, axis=ax, checked=checked)
            return ops.mean(loss, axis=ax) if mean else loss
        checked = _validate.target_values_checked(y)
        loss = _impl.sigmoid(ops.cast(y, dtype), y_pred, spec, from_logits=from_logits, checked=checked)
        return ops.mean(loss, axis=ax) if mean else loss
    # Classes on the literal last axis: TensorFlow's softmax ops transpose any other axis with a
    # computed permutation whose gradient XLA cannot compile inside a cond.
    z = y_pred if ax == len(y_pred.shape) - 1 else ops.moveaxis(y_pred, ax, -1)
    if kind == "dense":
        _validate.warn_single_class(num_classes, y_pred)
        q = ops.cast(y, dtype)
        return _impl.softmax_dense(q if z is y_pred else ops.moveaxis(q, ax, -1), z, spec, from_logits=from_logits)
    checked = _validate.index_values_checked(y, num_classes, ignore_class)
    loss, keep = _impl.softmax_index(y, z, spec, from_logits=from_logits, ignore_class=ignore_class, checked=checked)
    if keep is not None:
        # How Keras' sparse loss marks ignore_class positions; Loss.__call__ leaves them out of the reduction.
        _validate.set_keras_mask(loss, mask=keep)
    return loss


def poly_loss(
    y_true: Any,
    y_pred: Any,
    spec: PolySpec,
    *,
    family: str = "softmax",
    from_logits: bool = False,
    axis: int = -1,
    ignore_class: int | None = None,
) -> Any:
    """Any member of the PolyLoss family, unreduced.

    With ``x = 1 - p_t`` (``p_t`` the probability of the target):

    ```
    l(p_t) = -x^gamma log(p_t) + sum_j eps_j x^(j + gamma)
    softmax: loss = sum_c w_c q_c l(p_c)          (w_c from spec.alpha, q the smoothed target row)
    sigmoid: loss = alpha_t (BCE x^gamma + sum_j eps_j x^(j + gamma))   per element
    ```

    Hard labels in the softmax family reuse Keras' own fused cross-entropy ``c``
    (``p_t = exp(-c)``), so Poly-1 costs about as much as plain cross-entropy.

    Args:
        y_true: class indices (``y_pred``'s shape without ``axis``, or with size 1
            there; any integer or integral floating dtype) or per-class targets with
            ``y_pred``'s shape: probability rows for the softmax family, values in
            ``[0, 1]`` for the sigmoid family.
        y_pred: logits (``from_logits=True``) or probabilities, float16, bfloat16,
            float32 or float64. Half precision is computed (and returned) in float32.
        spec: the loss, a ``polyloss_core.PolySpec`` (epsilons, gamma, alpha,
            label_smoothing).
        family: ``"softmax"`` (default; one class per example) or ``"sigmoid"``
            (independent binary decisions).
        from_logits: whether ``y_pred`` holds logits. Default ``False``: probabilities,
            clipped to ``[epsilon, 1 - epsilon]`` as Keras does.
        axis: the class axis of ``y_pred``. Default ``-1``.
        ignore_class: softmax family with class indices only: positions labelled
            ``ignore_class`` get loss 0 and are masked out of Keras reductions, as in
            ``keras.losses.sparse_categorical_crossentropy``. Default ``None``.

    Shape:
        - ``y_pred``: ``(..., C, ...)`` with ``C`` on ``axis``.
        - ``y_true``: ``y_pred``'s shape, or that shape without ``axis``.
        - output: softmax ``y_pred``'s shape without ``axis``; sigmoid ``y_pred``'s shape.

    Returns:
        The unreduced loss: float32 for float16 / bfloat16 ``y_pred`` (Keras'
        mixed-precision convention, and the only way to hold the large losses of
        extreme half-precision logits), otherwise ``y_pred``'s dtype.

    Raises:
        ValueError: mismatched shapes, class indices outside ``[0, C)`` (eagerly),
            sigmoid targets outside ``[0, 1]`` (eagerly), a bad ``axis`` or ``family``,
            or a spec that does not fit the family.
        TypeError: a non-floating ``y_pred``, a spec that is not a ``PolySpec``, or
            a non-bool ``from_logits``.

    Inside ``tf.function``, XLA or ``jax.jit`` nothing can raise: an out-of-range
    class index gives ``NaN`` for its example (never a plausible number).

    Examples:
        >>> import numpy as np
        >>> from polyloss_core import PolySpec
        >>> logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype="float32")
        >>> loss = poly_loss(np.array([0, 2]), logits, PolySpec.poly1(1.0), from_logits=True)
        >>> print(np.round(keras.ops.convert_to_numpy(loss), 4))
        [0.3261 2.2253]
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    family, from_logits = check_family(spec, family), checks.check_bool("from_logits", from_logits)
    return unreduced(
        y_true,
        y_pred,
        spec,
        family,
        from_logits,
        checks.check_int("axis", axis),
        check_ignore_class(ignore_class, family),
    )


@_serializable
def poly1_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Any:
    """Poly-1 categorical cross-entropy per example: ``CE + epsilon * (1 - p_t)``.

    For target rows ``q`` (one-hot or soft, smoothed to ``(1 - s) q + s / C``)
    the loss is ``sum_c q_c (-log p_c + epsilon (1 - p_c))``; for one-hot rows this
    is the paper's ``CE + epsilon (1 - p_t)``. With ``epsilon=0`` it equals
    ``keras.losses.categorical_crossentropy``.

    Args:
        y_true: one-hot or probability targets, same shape as ``y_pred``.
        y_pred: probabilities (default) or logits, float16 to float64.
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``. Leng et al.
            suggest trying about ``2`` for ImageNet-style classification.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        axis: the class axis. Default ``-1``.

    Shape:
        ``y_true`` and ``y_pred``: ``(..., C, ...)``; output: without ``axis``.

    Returns:
        One loss per example (``y_pred``'s shape without ``axis``; float32 for
        half-precision ``y_pred``, else its dtype).

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], dtype="float32")
        >>> loss = poly1_categorical_crossentropy(y_true, y_pred, epsilon=1.0)
        >>> print(np.round(keras.ops.convert_to_numpy(loss), 4))
        [0.1013 3.2026]

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """
    spec = named_spec(epsilon, label_smoothing=label_smoothing)
    return _named(y_true, y_pred, spec, "softmax", "dense", from_logits, axis)


@_serializable
def poly1_sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> Any:
    """Poly-1 sparse categorical cross-entropy per example: ``CE + epsilon * (1 - p_t)``.

    ``p_t = exp(-CE)`` is recovered from Keras' own fused sparse cross-entropy,
    so the polynomial term costs a few elementwise operations per example. With
    ``epsilon=0`` it equals ``keras.losses.sparse_categorical_crossentropy``.

    Args:
        y_true: integer class indices (any integer or integral float dtype) in
            ``[0, C)``, with ``y_pred``'s shape without ``axis`` (or size 1 there).
        y_pred: probabilities (default) or logits, float16 to float64.
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        ignore_class: a label value whose positions get loss 0 and a Keras mask
            (e.g. ``-1`` or ``255`` for void pixels in segmentation). Default ``None``.
        axis: the class axis of ``y_pred``. Default ``-1``.

    Shape:
        ``y_pred``: ``(..., C, ...)``; ``y_true`` and output: ``y_pred``'s shape without ``axis``.

    Returns:
        The per-example loss, shaped like ``y_true`` (float32 for half-precision
        ``y_pred``, else its dtype).

    Raises:
        ValueError: (eagerly) a label outside ``[0, C)`` other than ``ignore_class``.
            Inside ``tf.function`` / XLA / ``jax.jit`` such an example's loss is ``NaN``.

    Examples:
        >>> import numpy as np
        >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], dtype="float32")
        >>> loss = poly1_sparse_categorical_crossentropy(np.array([1, 2]), y_pred, epsilon=1.0)
        >>> print(np.round(keras.ops.convert_to_numpy(loss), 4))
        [0.1013 3.2026]

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """
    return _named(y_true, y_pred, named_spec(epsilon), "softmax", "index", from_logits, axis, ignore_class)


@_serializable
def poly1_binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Any:
    """Poly-1 binary cross-entropy, averaged over ``axis`` like Keras: ``mean(BCE + epsilon (1 - p_t))``.

    Per element ``p_t = t p + (1 - t)(1 - p)`` with the smoothed target
    ``t = (1 - s) y_true + s / 2``. With ``epsilon=0`` it equals
    ``keras.losses.binary_crossentropy``. For the unaveraged per-element loss use
    ``poly_loss(..., family="sigmoid")``.

    Args:
        y_true: targets in ``[0, 1]``, same shape as ``y_pred``.
        y_pred: probabilities (default) or logits, float16 to float64.
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``; targets move towards 0.5. Default ``0.0``.
        axis: the axis the mean is taken over. Default ``-1``.

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., D)``; output: without ``axis``.

    Returns:
        The loss averaged over ``axis`` (float32 for half-precision ``y_pred``, else its dtype).

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0], [0.0, 0.0]], dtype="float32")
        >>> y_pred = np.array([[0.6, 0.4], [0.4, 0.6]], dtype="float32")
        >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(poly1_binary_crossentropy(y_true, y_pred))]
        [1.5163, 1.2136]

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """
    spec = named_spec(epsilon, label_smoothing=label_smoothing)
    return _named(y_true, y_pred, spec, "sigmoid", "dense", from_logits, axis)


@_serializable
def poly1_categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    alpha: float | list[float] | None = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Any:
    """Poly-1 categorical focal cross-entropy per example.

    ``sum_c alpha_c q_c ((1 - p_c)^gamma (-log p_c) + epsilon (1 - p_c)^(1 + gamma))``,
    i.e. for a one-hot target ``alpha (FL(p_t) + epsilon (1 - p_t)^(gamma + 1))``.
    ``alpha`` scales the polynomial term too. With ``epsilon=0`` it equals
    ``keras.losses.categorical_focal_crossentropy`` (moderate logits; for logits
    Keras clips probabilities at ``1e-7`` while this works from ``log_softmax``).

    Args:
        y_true: one-hot or probability targets, same shape as ``y_pred``.
        y_pred: probabilities (default) or logits, float16 to float64.
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        alpha: class weight: a number ``>= 0`` for every class, a list with one
            weight per class, or ``None`` for no weighting. Default ``0.25``.
        gamma: the focusing exponent, ``>= 0``. Default ``2.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: the smoothing amount ``s``, in ``[0, 1)``. Default ``0.0``.
        axis: the class axis, reduced in the output. Default ``-1``.

    Shape:
        ``y_true`` and ``y_pred``: ``(..., C, ...)``; output: without ``axis``.

    Returns:
        The focal loss of each example (float32 for half-precision ``y_pred``).

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        >>> y_pred = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], dtype="float32")
        >>> print(np.round(keras.ops.convert_to_numpy(poly1_categorical_focal_crossentropy(y_true, y_pred)), 4))
        [0.0148 0.1365]

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511; Lin et al., ICCV 2017.
    """
    spec = named_spec(epsilon, gamma, alpha, label_smoothing)
    return _named(y_true, y_pred, spec, "softmax", "dense", from_logits, axis)


@_serializable
def poly1_binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    epsilon: float = 1.0,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Any:
    """Poly-1 binary focal cross-entropy, averaged over ``axis`` like Keras.

    Per element ``alpha_t (BCE (1 - p_t)^gamma + epsilon (1 - p_t)^(1 + gamma))``
    with ``alpha_t = alpha t + (1 - alpha)(1 - t)`` when ``apply_class_balancing``
    (else 1). This is the paper's alpha-balanced Poly-1 focal loss, except that
    ``alpha_t`` here scales the epsilon term too (the paper's released code leaves
    it unweighted); with ``epsilon=0`` it equals
    ``keras.losses.binary_focal_crossentropy``.

    Args:
        y_true: targets in ``[0, 1]``, same shape as ``y_pred``.
        y_pred: probabilities (default) or logits, float16 to float64.
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``. Leng et al.
            report ``-1`` working well for COCO detection.
        apply_class_balancing: weigh positives by ``alpha`` and negatives by
            ``1 - alpha``. Default ``False``.
        alpha: the positive-class weight in ``[0, 1]``. Default ``0.25``.
        gamma: the focusing exponent, ``>= 0``. Default ``2.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``; targets move towards 0.5. Default ``0.0``.
        axis: the axis the mean is taken over. Default ``-1``.

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., D)``; output: without ``axis``.

    Returns:
        The mean over ``axis`` of the per-element focal loss (float32 for half precision).

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0], [0.0, 0.0]], dtype="float32")
        >>> y_pred = np.array([[0.6, 0.4], [0.4, 0.6]], dtype="float32")
        >>> loss = poly1_binary_focal_crossentropy(y_true, y_pred, epsilon=1.0, gamma=2.0)
        >>> print(np.round(keras.ops.convert_to_numpy(loss), 4))
        [0.5459 0.3458]

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511; Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    spec = named_spec(epsilon, gamma, alpha, label_smoothing, apply_class_balancing)
    return _named(y_true, y_pred, spec, "sigmoid", "dense", from_logits, axis)
