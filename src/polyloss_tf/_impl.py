"""The maths of the Keras adapter on validated tensors and a validated spec, written with ``keras.ops``.

Three computations, each with the class axis last: class indices
(``softmax_index``), per-class target rows (``softmax_dense``) and
independent binary decisions (``sigmoid``). Every decision that does not
depend on Keras (the polynomial, the fractional-gamma rule, smoothing, alpha)
is ``polyloss_core.series``'; this module supplies Keras' fused
cross-entropies and the bookkeeping around them. On the TensorFlow backend
logits with target rows take ``polyloss_tf._tensorflow`` (custom gradients).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from polyloss_core import PolySpec, series

from ._ops import OPS
from ._validate import host_values, static_shape

NAN = float("nan")
#: Under XLA (TensorFlow backend), Poly-1 with target rows branches on "every row one-hot" (``tf.cond``)
#: from this many classes on: below it the test and the split fusion cost more than the branch saves
#: (measured: docs/benchmarks.md).
XLA_BRANCH_MIN_CLASSES = 64


def _is_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def _poly1_epsilon(spec: PolySpec) -> float | None:
    """``eps`` when ``spec`` is cross-entropy or Poly-1 without focal exponent or per-class weights."""
    if spec.gamma != 0 or len(spec.epsilons) > 1 or series.alpha_parts(spec)[1] is not None:
        return None
    return spec.epsilons[0] if spec.epsilons else 0.0


def _class_weights(spec: PolySpec, dtype: str) -> Any:
    """The ``(C,)`` per-class weights of ``spec.alpha`` as a tensor, or ``None``."""
    per_class = series.alpha_parts(spec)[1]
    return None if per_class is None else ops.convert_to_tensor(np.asarray(per_class), dtype=dtype)


def _scaled(loss: Any, spec: PolySpec) -> Any:
    scalar = series.alpha_parts(spec)[0]
    return loss if scalar == 1.0 else loss * scalar


def _probabilities(y_pred: Any) -> Any:
    """Keras' treatment of probability inputs: renormalise over the classes, clip to ``[eps, 1 - eps]``."""
    eps = keras.backend.epsilon()
    return ops.clip(y_pred / ops.sum(y_pred, axis=-1, keepdims=True), eps, 1.0 - eps)


def _log_p_and_x(y_pred: Any, from_logits: bool) -> tuple[Any, Any]:
    """``(log p, 1 - p)`` per class, with ``1 - p = -expm1(log p)`` for logits (no cancellation)."""
    if from_logits:
        log_p = ops.log_softmax(y_pred, axis=-1)
        return log_p, -ops.expm1(log_p)
    p = _probabilities(y_pred)
    return ops.log(p), 1.0 - p


def _is_empty(x: Any) -> bool:
    """``x`` has a static size-0 axis (an empty batch): ``keras.ops.max`` / ``min`` raise on it eagerly."""
    return 0 in static_shape(x)


def all_rows_one_hot(q: Any) -> Any:
    """Scalar bool tensor: every row of ``q >= 0`` (classes last) is one-hot.

    For non-negative rows: a row's sum is at least its maximum, so every
    maximum 1 and ``sum(q) == sum(maxima)`` leave exactly one non-zero entry,
    a 1, per row, up to the rounding of the flat float sum: extra mass below
    about ``N * 2**-24`` in total is not seen, and such rows take the one-hot
    branch, whose loss then differs by about that mass times ``|log p|``. One
    row reduction and one flat sum; the exact tests (a count of non-zero
    entries, as the torch adapter runs on host memory, or per-row sums) cost a
    pass more in a TensorFlow graph (``docs/benchmarks.md``). (An all-zero row
    is not one-hot: the fused op's gradient of its constant 0 loss is ``p``.)
    No rows at all (an empty batch) are one-hot, as Keras' own loss takes them.
    On TensorFlow the two reads run only when the first row holds a 1 (a ``tf.cond``, which
    runs one branch; a first row without a 1 already decides ``False``), so soft batches
    read one row (measured: docs/benchmarks.md).
    """
    if _is_empty(q):
        return ops.convert_to_tensor(True)

    def every_row() -> Any:
        top = ops.max(q, axis=-1)
        return ops.logical_and(ops.all(top == 1.0), ops.sum(q) == ops.sum(top))

    if not _is_tensorflow():
        return every_row()
    first_row = ops.reshape(q, (-1, int(q.shape[-1])))[:1]  # no row at all in an empty batch: True, as above
    return ops.cond(ops.all(ops.max(first_row, axis=-1) == 1.0), every_row, lambda: ops.convert_to_tensor(False))


def per_class_sum(q: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool) -> Any:
    """``sum_c w_c q_c l(p_c)`` over the last axis for any rows ``q`` (already smoothed)."""
    weights = _class_weights(spec, keras.backend.standardize_dtype(y_pred.dtype))
    log_p, x = _log_p_and_x(y_pred, from_logits)
    wq = q if weights is None else q * weights
    return _scaled(ops.sum(wq * series.loss_from_ce(-log_p, x, spec, OPS), axis=-1), spec)


# --------------------------------------------------------------------------- class indices
def softmax_index(
    y: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, ignore_class: int | None, checked: bool
) -> tuple[Any, Any]:
    """Per-example loss for class indices ``y`` and the ``ignore_class`` keep-mask (or ``None``).

    The hard-label part is Keras' fused sparse cross-entropy ``c`` with
    ``p_t = exp(-c)``; smoothing adds ``s / C`` times the sum over classes
    (``polyloss_core.series.smoothing_weights``; Poly-1's closed form needs
    only ``sum_c log p_c``). Unchecked labels become NaN, except on TensorFlow,
    whose fused sparse op checks the range itself (an error on CPU, NaN on GPU
    and under XLA).
    """
    num_classes = int(y_pred.shape[-1])
    keep = None if ignore_class is None else ops.not_equal(y, ignore_class)
    valid = None
    if not checked and not _is_tensorflow():
        valid = ops.logical_and(y >= 0, y < num_classes)
        valid = valid if keep is None else ops.logical_or(valid, ops.logical_not(keep))
    usable = keep if valid is None else valid if keep is None else ops.logical_and(valid, keep)
    safe = ops.cast(y, "int32")
    if usable is not None:
        safe = ops.where(usable, safe, 0)
    ce = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=from_logits, axis=-1)
    loss = series.loss_from_ce(ce, -ops.expm1(-ce), spec, OPS)
    weights = _class_weights(spec, keras.backend.standardize_dtype(y_pred.dtype))
    if weights is not None:
        loss = loss * ops.take(weights, safe)
    loss = _scaled(loss, spec)
    if spec.label_smoothing:
        hard_weight, class_weight = series.smoothing_weights(spec, num_classes)
        eps = _poly1_epsilon(spec)
        if eps is not None:
            log_p, _ = _log_p_and_x(y_pred, from_logits)
            class_sum = _scaled(series.poly1_class_sum(-ops.sum(log_p, axis=-1), spec, num_classes, epsilon=eps), spec)
        else:
            class_sum = per_class_sum(ops.ones_like(y_pred), y_pred, spec, from_logits=from_logits)
        loss = hard_weight * loss + class_weight * class_sum
    if valid is not None:
        loss = ops.where(valid, loss, NAN)
    if keep is not None:
        loss = ops.where(keep, loss, 0.0)
    return loss, keep


# --------------------------------------------------------------------------- per-class target rows
def poly1_dense(q: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool) -> Any:
    """Poly-1 for target rows: ``CE(q) + eps (sum_c q_c - sum_c q_c p_c)`` (SPEC section 4), keras.ops form.

    One more reduction over the softmax the cross-entropy needs. From logits the
    gradient is given (``keras.ops.custom_gradient``) in its elementwise form,
    ``g (p_j (sum q + eps sum_c q_c p_c) - q_j (1 + eps p_j))``, so XLA fuses it
    into one loop instead of differentiating ``log_softmax`` and ``exp`` apart.
    """
    epsilon = spec.epsilons[0]
    if not from_logits:  # Keras' own clipped cross-entropy (it keeps the logits behind a softmax on TensorFlow)
        ce = ops.categorical_crossentropy(q, y_pred, axis=-1)
        return series.loss_from_ce(ce, ops.sum(q * (1.0 - _probabilities(y_pred)), axis=-1), spec, OPS)

    @ops.custom_gradient
    def loss_of(z: Any) -> Any:
        log_p = ops.log_softmax(z, axis=-1)
        p = ops.exp(log_p)
        total, overlap = ops.sum(q, axis=-1), ops.sum(q * p, axis=-1)

        def grad(*args: Any, upstream: Any = None) -> Any:
            upstream = args[0] if upstream is None else upstream
            scale = ops.expand_dims(upstream * (total + epsilon * overlap), -1)
            return p * scale - ops.expand_dims(upstream, -1) * q * (1.0 + epsilon * p)

        return series.loss_from_ce(-ops.sum(q * log_p, axis=-1), total - overlap, spec, OPS), grad

    return loss_of(y_pred)


def softmax_dense(q: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool) -> Any:
    """Per-example loss for per-class target rows ``q`` (not yet smoothed).

    Poly-1 and cross-entropy take ``poly1_dense`` (TensorFlow: the fused op
    with a custom gradient). Other members decide per batch whether the rows are
    one-hot (then every member is a function of Keras' fused cross-entropy) or
    not (the per-class sum); the choice reads a scalar only where it is already
    on the host, else it is an ``ops.cond``.
    """
    num_classes = int(y_pred.shape[-1])
    q = series.smooth_targets(q, spec, num_classes)
    eps = _poly1_epsilon(spec)
    tensorflow = from_logits and _is_tensorflow()
    if tensorflow:
        from . import _tensorflow

        xla = _tensorflow.compiling_with_xla()
    if eps is not None and spec.epsilons:
        if tensorflow:
            branch = not spec.label_smoothing and (not xla or num_classes >= XLA_BRANCH_MIN_CLASSES)
            one_hot = all_rows_one_hot(q) if branch else None
            return _scaled(_tensorflow.poly1_dense(q, y_pred, spec, one_hot), spec)
        return _scaled(poly1_dense(q, y_pred, spec, from_logits=from_logits), spec)
    if eps is not None:  # plain cross-entropy: Keras' own
        return _scaled(ops.categorical_crossentropy(q, y_pred, from_logits=from_logits, axis=-1), spec)
    if spec.label_smoothing:
        return per_class_sum(q, y_pred, spec, from_logits=from_logits)
    weights = _class_weights(spec, keras.backend.standardize_dtype(y_pred.dtype))

    def hard(ce: Any) -> Any:
        loss = _scaled(series.loss_from_ce(ce, -ops.expm1(-ce), spec, OPS), spec)
        return loss if weights is None else loss * ops.sum(q * weights, axis=-1)

    def general(rows: Any, z: Any) -> Any:
        return per_class_sum(rows, z, spec, from_logits=from_logits)

    one_hot = all_rows_one_hot(q)
    if tensorflow and not xla:
        return _tensorflow.any_member_dense(q, y_pred, one_hot, hard, general)
    known = host_values(one_hot)
    if known is not None:  # eager on a CPU: run one branch without tracing both
        if bool(known):
            return hard(ops.categorical_crossentropy(q, y_pred, from_logits=from_logits, axis=-1))
        return general(q, y_pred)
    ce = ops.categorical_crossentropy(q, y_pred, from_logits=from_logits, axis=-1)
    return ops.cond(one_hot, lambda: hard(ce), lambda: general(q, y_pred))


# --------------------------------------------------------------------------- sigmoid family
def _sigmoid_parts(z: Any, t: Any) -> tuple[Any, Any, Any, Any]:
    """``(BCE, 1 - p_t, sigmoid(z), sigmoid(-z))`` from logits with one ``exp`` and one ``log1p``.

    BCE is written as TensorFlow's ``sigmoid_cross_entropy_with_logits`` writes
    it (``relu(z) - t z + log1p(exp(-|z|))``, exact for confident 0/1 targets);
    ``1 - p_t`` is core's cancellation-free form of the two sigmoids.
    """
    e = ops.exp(-ops.abs(z))
    big = 1.0 / (1.0 + e)
    small = e * big
    positive = z >= 0.0
    p, q = ops.where(positive, big, small), ops.where(positive, small, big)
    bce = ops.relu(z) - t * z + ops.log1p(e)
    return bce, series.sigmoid_one_minus_p_t(z, t, OPS, p_and_q=(p, q)), p, q


def _in_unit_interval(t: Any, loss: Any) -> Any:
    return ops.where(ops.logical_and(t >= 0.0, t <= 1.0), loss, NAN)


def sigmoid_logits(t: Any, z: Any, spec: PolySpec, *, checked: bool) -> Any:
    """Per-element sigmoid loss from logits with its gradient in closed form (``series.sigmoid_slope``).

    For a spec where ``series.sigmoid_slope_applies``. The loss and its slope are
    elementwise functions of ``(z, t)``: XLA (``jit_compile``, Keras on JAX) fuses
    each into one loop, recomputing the parts in the backward; a TensorFlow graph
    runs the pair as one XLA-compiled function (``polyloss_tf._tensorflow``) and
    keeps the slope. Unchecked targets outside ``[0, 1]`` give NaN (SPEC section 6).
    """

    def value(parts: tuple[Any, Any, Any, Any], t: Any) -> Any:
        bce, x, _, _ = parts
        loss = series.sigmoid_loss(bce, t, spec, OPS, lambda: x)
        return loss if checked else _in_unit_interval(t, loss)

    def slope(parts: tuple[Any, Any, Any, Any], t: Any) -> Any:
        return series.sigmoid_slope(*parts, t, spec)

    if _is_tensorflow():
        from . import _tensorflow

        if _tensorflow.graph_without_xla():

            def value_and_slope(z: Any, t: Any) -> tuple[Any, Any]:
                parts = _sigmoid_parts(z, t)
                return value(parts, t), slope(parts, t)

            return _tensorflow.with_compiled_slope(value_and_slope, z, t)

    @ops.custom_gradient
    def loss_of(z: Any) -> Any:
        def grad(*args: Any, upstream: Any = None) -> Any:
            upstream = args[0] if upstream is None else upstream
            return upstream * slope(_sigmoid_parts(z, t), t)

        return value(_sigmoid_parts(z, t), t), grad

    return loss_of(z)


def sigmoid(t: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, checked: bool = True) -> Any:
    """Per-element ``alpha_t (BCE (1 - p_t)^g + sum_j eps_j (1 - p_t)^(j+g))`` for targets ``t``.

    Logits with an integer ``gamma`` and one epsilon take ``sigmoid_logits``.
    Probabilities are clipped to ``[eps, 1 - eps]`` as Keras' binary
    cross-entropy clips them, and ``1 - p_t`` comes from the clipped value too,
    so a prediction outside ``[0, 1]`` cannot make the loss negative.
    ``checked``: the targets' values were verified on the host; otherwise
    elements with targets outside ``[0, 1]`` get NaN (SPEC section 6).
    """
    t = series.smooth_binary_targets(t, spec)
    if from_logits and series.sigmoid_slope_applies(spec) and not spec.is_cross_entropy:
        return sigmoid_logits(t, y_pred, spec, checked=checked)

    def one_minus_p_t() -> Any:
        if from_logits:
            return series.sigmoid_one_minus_p_t(y_pred, t, OPS)
        p = ops.clip(y_pred, keras.backend.epsilon(), 1.0 - keras.backend.epsilon())
        return t * (1.0 - p) + (1.0 - t) * p

    loss = series.sigmoid_loss(ops.binary_crossentropy(t, y_pred, from_logits=from_logits), t, spec, OPS, one_minus_p_t)
    return loss if checked else nan_outside_unit_interval(t, loss)


def nan_outside_unit_interval(t: Any, loss: Any) -> Any:
    """NaN where a target leaves ``[0, 1]``, per element.

    Two flat reductions decide whether the batch has a bad target at all; only
    then (an ``ops.cond``; on the torch backend, whose ``cond`` reads its
    predicate on the host, always) are the elements marked.
    """
    if _is_empty(t):  # nothing to mark; ``keras.ops.min`` / ``max`` raise on an empty tensor
        return loss
    if keras.backend.backend() == "torch":
        return _in_unit_interval(t, loss)
    return ops.cond(
        ops.logical_or(ops.min(t) < 0.0, ops.max(t) > 1.0), lambda: _in_unit_interval(t, loss), lambda: loss
    )


def sigmoid_index(y: Any, y_pred: Any, spec: PolySpec, *, from_logits: bool, axis: int, checked: bool) -> Any:
    """Per-element sigmoid loss for class indices (one-hot along ``axis``); bad indices give NaN rows."""
    num_classes = int(y_pred.shape[axis])
    valid = None if checked else ops.logical_and(y >= 0, y < num_classes)
    safe = ops.cast(y, "int32") if valid is None else ops.where(valid, ops.cast(y, "int32"), 0)
    t = ops.one_hot(safe, num_classes, axis=axis, dtype=keras.backend.standardize_dtype(y_pred.dtype))
    loss = sigmoid(t, y_pred, spec, from_logits=from_logits)
    return loss if valid is None else ops.where(ops.expand_dims(valid, axis), loss, NAN)
