"""Argument checks, label layout and the two loss families, written with ``keras.ops`` only.

The polynomial itself comes from :mod:`polyloss_core.series`; this module only
supplies what Keras computes natively (fused cross-entropies, ``log_softmax``,
``expm1``) and the bookkeeping around it (label layout, class weights, bad
labels). Nothing here imports a backend directly, so the same code runs on the
TensorFlow, JAX and PyTorch Keras backends.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.backend import set_keras_mask  # private; see the note in ``unreduced``

import polyloss_core
from polyloss_core import PolySpec, check_family, poly_loss_from_log_prob, polynomial_term

LOW_PRECISION = frozenset({"float16", "bfloat16"})
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


# --------------------------------------------------------------------------- argument checks
def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool, or ``TypeError`` naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {name}={value!r} of type {type(value).__name__}")
    return bool(value)


def check_axis(axis: Any) -> int:
    """``axis`` as an int. A bool raises ``ValueError`` (as Keras does), other types ``TypeError``."""
    if isinstance(axis, (bool, np.bool_)):
        raise ValueError(f"axis must be an int, got axis={axis!r} of type bool")
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got axis={axis!r} of type {type(axis).__name__}")
    return int(axis)


def check_epsilon(epsilon: Any) -> float:
    """``epsilon`` as a float in ``[-1, inf)``; the paper's validity bound is ``epsilon >= -1``."""
    if isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        raise TypeError(f"epsilon must be a real number, got epsilon={epsilon!r} of type {type(epsilon).__name__}")
    return polyloss_core.check_epsilon(float(epsilon))


def check_ignore_class(ignore_class: Any) -> int | None:
    """``ignore_class`` as ``None`` or an int."""
    if ignore_class is None:
        return None
    if isinstance(ignore_class, (bool, np.bool_)) or not isinstance(ignore_class, (int, np.integer)):
        raise TypeError(
            f"ignore_class must be None or an int, got ignore_class={ignore_class!r} of type {type(ignore_class).__name__}"
        )
    return int(ignore_class)


def check_family_name(family: Any) -> str:
    if family not in ("softmax", "sigmoid"):
        raise ValueError(f"family must be 'softmax' or 'sigmoid', got family={family!r}")
    return str(family)


def alpha_value(alpha: Any) -> Any:
    """A hashable form of a focal ``alpha``: sequences and arrays become tuples (``PolySpec`` checks values)."""
    if isinstance(alpha, np.ndarray):
        alpha = alpha.tolist()
    if isinstance(alpha, (list, tuple)):
        return tuple(alpha)
    return alpha


def alpha_config(alpha: Any) -> Any:
    """``alpha`` as a JSON-safe value for ``get_config`` (sequences become lists)."""
    value = alpha_value(alpha)
    return list(value) if isinstance(value, tuple) else value


@functools.lru_cache(maxsize=512)
def cached_spec(
    epsilons: tuple[float, ...], gamma: float, alpha: float | tuple[float, ...] | None, label_smoothing: float
) -> PolySpec:
    """Build (and validate) a spec once per distinct configuration; the functional forms call this every step."""
    return PolySpec(epsilons=epsilons, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)


def poly1_spec(epsilon: Any, *, gamma: Any = 0.0, alpha: Any = None, label_smoothing: Any = 0.0) -> PolySpec:
    """The Poly-1 spec of a named loss; errors name the Keras argument (``epsilon``, ``gamma``, ...)."""
    key = (check_epsilon(epsilon),), gamma, alpha_value(alpha), label_smoothing
    try:
        hash(key)
    except TypeError:  # e.g. a nested list as alpha: let PolySpec raise its TypeError naming the field
        return PolySpec(epsilons=key[0], gamma=gamma, alpha=key[2], label_smoothing=label_smoothing)
    return cached_spec(*key)


def binary_focal_spec(
    epsilon: Any, apply_class_balancing: Any, alpha: Any, gamma: Any, label_smoothing: Any
) -> PolySpec:
    """The spec of the binary focal loss; ``alpha`` applies only with ``apply_class_balancing``."""
    balancing = check_bool("apply_class_balancing", apply_class_balancing)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a number in [0, 1], got alpha={alpha!r} of type {type(alpha).__name__}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got alpha={alpha!r}")
    return poly1_spec(epsilon, gamma=gamma, alpha=float(alpha) if balancing else None, label_smoothing=label_smoothing)


def dtype_config(dtype: Any) -> Any:
    """The ``dtype`` constructor argument in a form ``keras.dtype_policies.get`` accepts back."""
    if dtype is None or isinstance(dtype, (str, dict)):  # a dict is a serialized DTypePolicy
        return dtype
    if isinstance(dtype, keras.dtype_policies.DTypePolicy):
        return keras.dtype_policies.serialize(dtype)
    return keras.backend.standardize_dtype(dtype)


# --------------------------------------------------------------------------- tensors and layout
def static_shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def _compatible(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def concrete(x: Any) -> np.ndarray | None:
    """The values of ``x`` as NumPy when it has any (eager), ``None`` inside tf.function / jax.jit tracing."""
    if keras.backend.is_keras_tensor(x):
        return None
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except (NotImplementedError, TypeError):
        # tf.function graph tensors raise NotImplementedError, JAX tracers a TypeError subclass.
        return None


def _numeric_dtype(name: str, x: Any, what: str) -> Any:
    """``x`` as a tensor; anything that is not a real number type raises ``TypeError`` naming ``name``."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold {what}, got dtype {x.dtype}")
    return ops.convert_to_tensor(x)


def as_float_tensor(name: str, x: Any) -> Any:
    what = "floating values (float16, bfloat16, float32 or float64)"
    tensor = _numeric_dtype(name, x, what)
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must hold {what}, got dtype {dtype}")
    return tensor


def as_label_tensor(name: str, x: Any) -> Any:
    what = "numbers (integer class indices or floating targets)"
    tensor = _numeric_dtype(name, x, what)
    dtype = keras.backend.standardize_dtype(tensor.dtype)
    if not (keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype) or dtype == "bool"):
        raise TypeError(f"{name} must hold {what}, got dtype {dtype}")
    return tensor


def normalize_axis(axis: int, rank: int) -> int:
    if rank == 0:
        raise ValueError("y_pred must have at least one dimension (the class axis), got a scalar")
    if not -rank <= axis < rank:
        raise ValueError(f"axis={axis} is out of range for y_pred with {rank} dimension(s)")
    return axis % rank


def split_labels(y_true: Any, y_pred: Any, axis: int, expect: str | None) -> tuple[str, Any]:
    """Decide whether ``y_true`` holds class indices or per-class targets and check its shape.

    Class indices have ``y_pred``'s shape without ``axis`` (or size 1 on ``axis``,
    which is squeezed as Keras' sparse loss does); targets have ``y_pred``'s shape.
    The layout is read from the shape, not the dtype, because
    ``keras.losses.Loss.__call__`` casts ``y_true`` to the loss dtype.
    """
    pred_shape, true_shape = static_shape(y_pred), static_shape(y_true)
    index_shape = pred_shape[:axis] + pred_shape[axis + 1 :]
    kind = "dense"
    if len(true_shape) == len(pred_shape) - 1:
        kind = "index"
    elif len(true_shape) == len(pred_shape) and true_shape[axis] == 1 and pred_shape[axis] != 1 and expect != "dense":
        y_true = ops.squeeze(y_true, axis=axis)
        true_shape = static_shape(y_true)
        kind = "index"
    if expect is not None and kind != expect:
        wanted = f"{index_shape} (class indices)" if expect == "index" else f"{pred_shape} (per-class targets)"
        raise ValueError(
            f"y_true must have shape {wanted} for y_pred.shape={pred_shape}, got y_true.shape={true_shape}"
        )
    wanted_shape = index_shape if kind == "index" else pred_shape
    if not _compatible(true_shape, wanted_shape):
        raise ValueError(
            f"y_true.shape={true_shape} does not match y_pred.shape={pred_shape}: expected {pred_shape} "
            f"(targets) or {index_shape} (class indices along axis {axis})"
        )
    return kind, y_true


def check_index_values(labels: Any, num_classes: int, ignore_class: int | None) -> bool:
    """Eagerly raise for labels that are not class indices in ``[0, num_classes)``.

    Returns ``True`` when the values were checked (so the traced-mode NaN guard
    can be left out) and ``False`` when ``labels`` is symbolic.
    """
    values = concrete(labels)
    if values is None:
        return False
    flat = values.ravel()
    if flat.dtype.kind == "f":
        fractional = flat != np.floor(flat)
        if fractional.any():
            raise ValueError(f"y_true must hold integer class indices, got the value {float(flat[fractional][0])!r}")
    bad = (flat < 0) | (flat >= num_classes)
    if ignore_class is not None:
        bad &= flat != ignore_class
    if bad.any():
        value = flat[bad][0]
        shown = int(value) if np.isfinite(value) else value
        extra = f" (ignore_class={ignore_class})" if ignore_class is not None else ""
        raise ValueError(f"y_true holds the class index {shown}, outside [0, {num_classes}){extra}")
    return True


def check_target_values(targets: Any) -> None:
    """Eagerly raise for sigmoid-family targets outside ``[0, 1]``."""
    values = concrete(targets)
    if values is None or values.size == 0:
        return
    values = values.astype(np.float64)
    bad = ~((values >= 0.0) & (values <= 1.0))
    if bad.any():
        raise ValueError(
            f"y_true targets of the sigmoid family must be in [0, 1], got the value {float(values[bad][0])!r}"
        )


# --------------------------------------------------------------------------- numerics
def _tiny(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).tiny)


def focal_safe(x: Any, spec: PolySpec, dtype: str) -> Any:
    """Clamp ``1 - p`` to the smallest normal number before a fractional power.

    ``d/dx x^g`` is infinite at ``x = 0`` for ``0 < g < 1`` and the chain rule
    would multiply it by a zero; the clamp changes values by less than ``tiny``.
    """
    if spec.gamma == 0 or float(spec.gamma).is_integer():
        return x
    tiny = _tiny(dtype)
    # ops.where rather than ops.maximum: the torch backend's maximum returns float32 for float64 input.
    return ops.where(x > tiny, x, tiny)


def loss_from_ce(ce: Any, spec: PolySpec, dtype: str, one_minus_p: Any = None) -> Any:
    """Any softmax member from the per-example cross-entropy of a hard label: ``p_t = exp(-ce)``.

    ``one_minus_p`` is ``1 - p_t = -expm1(-ce)`` when the caller has it already.
    """
    if spec.is_cross_entropy:
        return ce
    if one_minus_p is None:
        one_minus_p = -ops.expm1(-ce)
    return poly_loss_from_log_prob(-ce, focal_safe(one_minus_p, spec, dtype), spec)


def class_weights(spec: PolySpec, dtype: str) -> Any:
    """``None``, a Python float, or a ``(C,)`` tensor of per-class weights from ``spec.alpha``."""
    if spec.alpha is None:
        return None
    if isinstance(spec.alpha, tuple):
        return ops.convert_to_tensor(np.asarray(spec.alpha), dtype=dtype)
    return float(spec.alpha)


def _along(vector: Any, axis: int, rank: int) -> Any:
    """Reshape a ``(C,)`` vector to broadcast along ``axis`` of a rank-``rank`` tensor."""
    axis = axis % rank
    return ops.reshape(vector, [-1 if d == axis else 1 for d in range(rank)])


def all_rows_one_hot(q: Any, axis: int) -> Any:
    """Scalar bool tensor: every row of ``q`` along ``axis`` has a 1 and sums to 1.

    For target rows that are distributions (non-negative), as the softmax family
    requires, that means exactly one-hot; two row reductions, which XLA fuses.
    (The TensorFlow graph path, ``_tensorflow.all_rows_one_hot``, decides with
    one read of the targets instead.)
    """
    return ops.all(ops.logical_and(ops.max(q, axis=axis) == 1.0, ops.sum(q, axis=axis) == 1.0))


def _index_guards(
    labels: Any, num_classes: int, ignore_class: int | None, *, native_range_check: bool = False
) -> tuple[Any, Any, Any]:
    """``(safe, in_range, keep)`` for class-index labels.

    Eagerly the labels were checked (a bad one raised), so ``in_range`` is
    ``None``. Traced, nothing can raise, so ``in_range`` marks the positions
    whose loss is valid and the caller turns the rest into NaN; ``safe`` then
    reads class 0 wherever a label cannot be used. With ``native_range_check``
    the consumer is TensorFlow's fused sparse cross-entropy, which already
    raises (graph mode) or returns NaN (XLA, GPU) for out-of-range labels, so
    no guard is added. ``keep`` is ``None`` without ``ignore_class`` and
    otherwise marks the positions that are not ignored. Traced floating labels
    are cast to integers as Keras casts them; only the eager check rejects
    fractional values.
    """
    checked = check_index_values(labels, num_classes, ignore_class)
    keep = None if ignore_class is None else ops.not_equal(labels, ignore_class)
    in_range = None
    if not checked and not native_range_check:
        in_range = ops.logical_and(labels >= 0, labels < num_classes)
        if keep is not None:
            in_range = ops.logical_or(in_range, ops.logical_not(keep))
    usable = keep
    if in_range is not None:
        usable = in_range if keep is None else ops.logical_and(in_range, keep)
    safe = ops.cast(labels, "int32")
    if usable is not None:
        safe = ops.where(usable, safe, 0)
    return safe, in_range, keep


def softmax_from_index(
    labels: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, axis: int, ignore_class: int | None
) -> tuple[Any, Any]:
    """Per-example softmax PolyLoss for class-index labels, and the ``ignore_class`` mask (or ``None``)."""
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    num_classes = int(y_pred.shape[axis])
    # TensorFlow's fused sparse cross-entropy checks the label range itself.
    native = not spec.label_smoothing and keras.backend.backend() == "tensorflow"
    safe, in_range, keep = _index_guards(labels, num_classes, ignore_class, native_range_check=native)
    if spec.label_smoothing:
        q = ops.one_hot(safe, num_classes, axis=axis, dtype=dtype)
        loss = softmax_general(smooth(q, spec, num_classes), y_pred, spec, from_logits=from_logits, axis=axis)
    else:
        # The framework's own fused cross-entropy c, then p_t = exp(-c) for the polynomial.
        ce = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=from_logits, axis=axis)
        loss = loss_from_ce(ce, spec, dtype)
        weights = class_weights(spec, dtype)
        if isinstance(weights, float):
            loss = loss * weights
        elif weights is not None:
            loss = loss * ops.take(weights, safe)
    if in_range is not None:
        loss = ops.where(in_range, loss, float("nan"))
    if keep is not None:
        loss = ops.where(keep, loss, 0.0)
    return loss, keep


def smooth(q: Any, spec: PolySpec, num_classes: int) -> Any:
    s = spec.label_smoothing
    return q * (1.0 - s) + s / num_classes if s else q


def softmax_general(q: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, axis: int, ce: Any = None) -> Any:
    """``sum_c w_c q_c l(p_c)`` for any target rows ``q`` (already smoothed).

    Without a focal exponent or per-class weights this is Keras' own
    cross-entropy plus the polynomial term; ``ce``, when given, is that
    cross-entropy of ``q``.
    """
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    weights = class_weights(spec, dtype)
    per_class_weights = weights is not None and not isinstance(weights, float)
    if per_class_weights:
        weights = _along(weights, axis, len(y_pred.shape))
    wq = q if weights is None else q * weights
    fused = spec.is_cross_entropy or not from_logits or ce is not None
    # Per-class weights never go into the fused op: TensorFlow's gradient for it assumes
    # target rows that sum to 1.
    if spec.gamma == 0 and fused and not per_class_weights:
        # Keras' fused cross-entropy (for probabilities it clips, or on TensorFlow reuses
        # the logits behind a softmax activation), plus the polynomial term.
        if ce is None:
            ce = ops.categorical_crossentropy(q, y_pred, from_logits=from_logits, axis=axis)
        if weights is not None:
            ce = ce * weights
        if spec.is_cross_entropy:
            return ce
        x = -ops.expm1(ops.log_softmax(y_pred, axis=axis)) if from_logits else 1.0 - _probabilities(y_pred, axis)
        return ce + ops.sum(wq * polynomial_term(x, spec), axis=axis)
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=axis)
        x = -ops.expm1(log_p)
    else:
        p = _probabilities(y_pred, axis)
        log_p, x = ops.log(p), 1.0 - p
    per_class = poly_loss_from_log_prob(log_p, focal_safe(x, spec, dtype), spec)
    return ops.sum(wq * per_class, axis=axis)


def _probabilities(y_pred: Any, axis: int) -> Any:
    """Keras' treatment of probability inputs: renormalise along ``axis``, clip to ``[eps, 1 - eps]``."""
    eps = keras.backend.epsilon()
    p = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    return ops.clip(p, eps, 1.0 - eps)


def softmax_from_dense(q: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, axis: int) -> Any:
    """Per-example softmax PolyLoss for per-class target rows ``q``.

    Keras' fused cross-entropy ``c`` of ``q`` is computed first. If every row is
    one-hot (the common case; ``all_rows_one_hot``) the loss follows from ``c``
    alone (``p_t = exp(-c)``); otherwise (soft labels) the general formula runs.
    The choice is made once per batch (``ops.cond`` when traced), so only one
    branch runs; keeping the fused op outside the branches also keeps Keras'
    recovery of the logits behind a softmax activation on TensorFlow. Logits on
    the TensorFlow backend take ``_tensorflow.dense_softmax_with_logits``, the
    same decision with a gradient that costs what Keras' own costs.
    """
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    num_classes = int(y_pred.shape[axis])
    if spec.label_smoothing or spec.is_cross_entropy:
        return softmax_general(smooth(q, spec, num_classes), y_pred, spec, from_logits=from_logits, axis=axis)

    def hard(ce: Any, one_minus_p: Any = None) -> Any:
        loss = loss_from_ce(ce, spec, dtype, one_minus_p)
        weights = class_weights(spec, dtype)
        if isinstance(weights, float):
            return loss * weights
        if weights is not None:
            return loss * ops.sum(q * _along(weights, axis, len(y_pred.shape)), axis=axis)
        return loss

    def general(rows: Any, logits_or_probs: Any, ce: Any) -> Any:
        return softmax_general(rows, logits_or_probs, spec, from_logits=from_logits, axis=axis, ce=ce)

    if from_logits and keras.backend.backend() == "tensorflow":
        from polyloss_tf import _tensorflow

        if not _tensorflow.compiling_with_xla():
            return _tensorflow.dense_softmax_with_logits(q, y_pred, hard, general)
    ce = ops.categorical_crossentropy(q, y_pred, from_logits=from_logits, axis=axis)
    one_hot = all_rows_one_hot(q, axis)
    known = concrete(one_hot)
    if known is not None:  # eager (also under jax.grad): run one branch without tracing both
        return hard(ce) if bool(known) else general(q, y_pred, ce)
    return ops.cond(one_hot, lambda: hard(ce), lambda: general(q, y_pred, ce))


def sigmoid_per_element(t: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool) -> Any:
    """``alpha_t (BCE (1 - p_t)^g + sum_j eps_j (1 - p_t)^(j+g))`` per element (``t`` already dense)."""
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    s = spec.label_smoothing
    if s:
        t = t * (1.0 - s) + 0.5 * s
    bce = ops.binary_crossentropy(t, y_pred, from_logits=from_logits)
    if spec.is_cross_entropy:
        loss = bce
    else:
        if from_logits:
            # 1 - p_t = t (1 - p) + (1 - t) p, a sum of non-negative terms (no cancellation).
            x = t * ops.sigmoid(-y_pred) + (1.0 - t) * ops.sigmoid(y_pred)
        else:
            x = t * (1.0 - y_pred) + (1.0 - t) * y_pred
        loss = poly_loss_from_log_prob(-bce, focal_safe(x, spec, dtype), spec)
    if spec.alpha is not None:
        alpha = float(spec.alpha)  # type: ignore[arg-type]  # check_family rejects per-class alpha here
        loss = (alpha * t + (1.0 - alpha) * (1.0 - t)) * loss
    return loss


def sigmoid_from_index(labels: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, axis: int) -> Any:
    """Per-element sigmoid PolyLoss for class indices (one-hot along ``axis``)."""
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    num_classes = int(y_pred.shape[axis])
    safe, in_range, _ = _index_guards(labels, num_classes, None)
    t = ops.one_hot(safe, num_classes, axis=axis, dtype=dtype)
    loss = sigmoid_per_element(t, y_pred, spec, from_logits=from_logits)
    if in_range is not None:
        loss = ops.where(ops.expand_dims(in_range, axis), loss, float("nan"))
    return loss


def unreduced(
    y_true: Any,
    y_pred: Any,
    spec: PolySpec,
    *,
    family: str,
    from_logits: bool,
    axis: int,
    ignore_class: int | None = None,
    expect: str | None = None,
) -> Any:
    """The shared body of every public function: checks, layout, half-precision upcast, dispatch.

    Returns the loss (per example for the softmax family, per element for the
    sigmoid family) in float32 for half-precision ``y_pred``, else in ``y_pred``'s
    dtype; with ``ignore_class`` it carries the Keras mask of the kept positions.
    """
    y_pred = as_float_tensor("y_pred", y_pred)
    y_true = as_label_tensor("y_true", y_true)
    rank = len(y_pred.shape)
    ax = normalize_axis(axis, rank)
    num_classes = y_pred.shape[ax]
    if num_classes is None:
        raise ValueError(
            f"axis {axis} of y_pred (the classes) must have a known size, got y_pred.shape={static_shape(y_pred)}"
        )
    check_family(spec, family, int(num_classes))
    kind, labels = split_labels(y_true, y_pred, ax, expect)

    # Half precision is computed in float32 and stays there: Keras' mixed-precision
    # convention (losses in float32), and the only dtype that holds e.g. the 1.2e5
    # cross-entropy of float16 logits of +-6e4.
    in_dtype = keras.backend.standardize_dtype(y_pred.dtype)
    dtype = "float32" if in_dtype in LOW_PRECISION else in_dtype
    z = y_pred if dtype == in_dtype else ops.cast(y_pred, dtype)
    keep = None
    if family == "softmax":
        if ax != rank - 1:
            z = ops.moveaxis(z, ax, -1)
            labels = labels if kind == "index" else ops.moveaxis(labels, ax, -1)
        # Always the literal last axis: TensorFlow's softmax ops transpose any other axis
        # (even a non-negative spelling of the last one) with a computed permutation whose
        # gradient XLA cannot compile inside ops.cond.
        ax = -1
        if kind == "index":
            loss, keep = softmax_from_index(
                labels, z, spec, from_logits=from_logits, axis=ax, ignore_class=ignore_class
            )
        else:
            loss = softmax_from_dense(ops.cast(labels, dtype), z, spec, from_logits=from_logits, axis=ax)
    elif kind == "index":
        loss = sigmoid_from_index(labels, z, spec, from_logits=from_logits, axis=ax)
    else:
        check_target_values(labels)
        loss = sigmoid_per_element(ops.cast(labels, dtype), z, spec, from_logits=from_logits)
    if keep is not None:
        # How Keras' own sparse_categorical_crossentropy marks ignore_class positions;
        # keras.losses.Loss.__call__ then leaves them out of the reduction. Keras 3 does
        # not export set_keras_mask, and setting ``_keras_mask`` by hand fails for JAX
        # arrays, so the private import is the faithful way to mirror Keras. tests/keras
        # compares the masked reductions with Keras' loss on every backend.
        set_keras_mask(loss, mask=keep)
    return loss
