"""TensorFlow backend only: target rows from logits at about the cost of Keras' own cross-entropy.

Imported by ``polyloss_tf._impl`` only when Keras runs on TensorFlow. Both
routes start from TensorFlow's fused ``SoftmaxCrossEntropyWithLogits`` (what
``keras.losses.CategoricalCrossentropy`` runs), which returns the cross-entropy
``c`` of each row and ``softmax - q``, and put the whole gradient in one
``tf.custom_gradient``:

* ``poly1_dense``, Poly-1 for any rows: ``c + eps (sum q - sum q p)``, with
  ``p = (softmax - q) + q``; the gradient is elementwise,
  ``g (p_j (sum q + eps sum_c q_c p_c) - q_j (1 + eps p_j))`` (SPEC section 4).
  In graph mode a ``tf.cond`` on ``one_hot`` uses ``c`` alone for one-hot
  batches (``p_t = exp(-c)``), so their gradient is Keras' own times a number
  per row. Under XLA the elementwise form fuses; the branch is taken there
  only from ``_impl.XLA_BRANCH_MIN_CLASSES`` classes on, each branch computing
  its own rows (``_branch_under_xla``: the fused op for one-hot batches, one
  pass of row sums for the others).
* ``any_member_dense``, every other member, graph mode: one-hot
  batches scale the fused op's gradient by ``dl/dc``; other batches
  differentiate the per-class formula (only that branch pays for it).

Both are ``dense_softmax`` with their own branches.

A graph without ``jit_compile`` runs every elementwise step as its own pass over
the tensor; the elementwise parts (Poly-1's row terms and gradient after the
fused op; the sigmoid family's loss and slope, ``with_compiled_slope``) run
there as small XLA-compiled functions (``_fused_in_a_graph``), one loop each.

``1 - p_t`` of a one-hot row is ``2 t / (1 + t)`` with ``t = tanh(c / 2)``: the
same quantity as ``-expm1(-c)`` with no cancellation as ``p_t -> 1``, and
TensorFlow vectorises ``tanh`` (measured costs: ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from polyloss_core import PolySpec
from polyloss_core.series import loss_from_ce, poly1_from_row_sums

from ._ops import OPS


def compiling_with_xla() -> bool:
    """Whether the function being traced is compiled by XLA (``jit_compile=True``).

    TensorFlow has no public API for this; its private helper is used when
    present, and without it the answer is ``False`` (the graph-mode route, also
    correct under XLA).
    """
    try:
        from tensorflow.python.framework import ops as framework_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a future TensorFlow without the private modules
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(framework_ops.get_default_graph()))


def graph_without_xla() -> bool:
    """Whether a TensorFlow graph (``tf.function``) without ``jit_compile`` is being traced.

    Not with op determinism enabled, where Keras itself keeps XLA off.
    """
    from tensorflow.python.framework.config import is_op_determinism_enabled  # what Keras' trainer reads

    return not tf.executing_eagerly() and not compiling_with_xla() and not is_op_determinism_enabled()


def _fused_in_a_graph(elementwise: Callable) -> Callable:
    """``elementwise`` compiled by XLA (one fused loop) in a graph without ``jit_compile``; else itself."""
    return tf.function(elementwise, jit_compile=True, autograph=False) if graph_without_xla() else elementwise


def with_compiled_slope(value_and_slope: Callable, z: Any, t: Any) -> Any:
    """``value_and_slope(z, t)[0]``, whose gradient is ``upstream * value_and_slope(z, t)[1]``.

    Called only where ``graph_without_xla()``.

    For elementwise losses (the sigmoid family): TensorFlow runs every
    elementwise step of a graph as its own pass over the tensor, so the pair is
    one function compiled by XLA (``tf.function(jit_compile=True)``, one fused
    loop reading ``z`` and ``t``, writing the loss and the slope). The slope is
    kept for the backward, which is one multiplication.
    """
    compiled = tf.function(value_and_slope, jit_compile=True, autograph=False)

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        loss, slope = compiled(z, t)
        return loss, lambda upstream: upstream * slope

    return loss_of(z)


def one_minus_exp_neg(ce: Any) -> Any:
    """``1 - exp(-ce)`` for ``ce >= 0`` as ``2 tanh(ce/2) / (1 + tanh(ce/2))``."""
    t = tf.math.tanh(0.5 * ce)
    return 2.0 * t / (1.0 + t)


def _fused(q: Any, z: Any) -> tuple[Any, Any, Any]:
    """``(flat q, c per row, softmax - q)`` from TensorFlow's fused op, rows flattened to ``(-1, C)``."""
    classes = int(z.shape[-1])
    flat_q = tf.reshape(q, [-1, classes])
    ce, softmax_minus_q = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=tf.reshape(z, [-1, classes]), labels=flat_q)
    return flat_q, ce, softmax_minus_q


def dense_softmax(q: Any, logits: Any, one_hot: Any, hard: Callable, soft: Callable, soft_grad: Callable) -> Any:
    """Per-row loss of target rows ``q`` (classes last) from ``logits``, with one custom gradient.

    ``hard(c) -> (loss, dloss/dc)`` for one-hot batches (their gradient is the
    fused op's, scaled per row); ``soft(q, c, softmax - q, z) -> (loss, aux)``
    and ``soft_grad(upstream, z, q, softmax - q, aux) -> dz`` for any rows.
    ``one_hot`` (a scalar bool tensor, or ``None`` for "soft always") picks the
    branch with a ``tf.cond``. ``q`` gets no gradient, as in Keras' categorical
    losses on logits.
    """

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        flat_q, ce, softmax_minus_q = _fused(q, z)

        def soft_branch() -> Any:
            return soft(flat_q, ce, softmax_minus_q, z)

        loss, aux = soft_branch() if one_hot is None else tf.cond(one_hot, lambda: hard(ce), soft_branch)

        def grad(upstream: Any) -> Any:
            def soft_branch_grad() -> Any:
                return tf.reshape(soft_grad(upstream, z, flat_q, softmax_minus_q, aux), tf.shape(z))

            def hard_grad() -> Any:
                return tf.reshape(
                    tf.reshape(upstream * tf.reshape(aux, tf.shape(upstream)), [-1, 1]) * softmax_minus_q, tf.shape(z)
                )

            return soft_branch_grad() if one_hot is None else tf.cond(one_hot, hard_grad, soft_branch_grad)

        return tf.reshape(loss, tf.shape(z)[:-1]), grad

    return loss_of(logits)


def poly1_dense(q: Any, logits: Any, spec: PolySpec, one_hot: Any = None) -> Any:
    """Poly-1 of any rows: ``c + eps (sum q - sum q p)``, gradient ``g (p (sum q + eps sum q p) - q (1 + eps p))``."""

    epsilon = spec.epsilons[0]

    def hard(ce: Any) -> Any:  # d(c + eps x)/dc = 1 + eps (1 - x)
        x = one_minus_exp_neg(ce)
        return loss_from_ce(ce, x, spec, OPS), 1.0 + epsilon * (1.0 - x)

    def soft_value(flat_q: Any, ce: Any, softmax_minus_q: Any) -> Any:
        total, overlap = tf.reduce_sum(flat_q, -1), tf.reduce_sum(flat_q * (softmax_minus_q + flat_q), -1)
        return loss_from_ce(ce, total - overlap, spec, OPS), total + epsilon * overlap

    def soft_slope(upstream: Any, flat_q: Any, softmax_minus_q: Any, aux: Any) -> Any:
        p = softmax_minus_q + flat_q
        return tf.reshape(upstream, [-1, 1]) * (p * tf.reshape(aux, [-1, 1]) - flat_q * (1.0 + epsilon * p))

    if one_hot is not None and compiling_with_xla():
        return _branch_under_xla(q, logits, spec, one_hot, hard)
    value, slope = _fused_in_a_graph(soft_value), _fused_in_a_graph(soft_slope)
    return dense_softmax(
        q,
        logits,
        one_hot,
        hard,
        lambda flat_q, ce, softmax_minus_q, z: value(flat_q, ce, softmax_minus_q),
        lambda upstream, z, flat_q, softmax_minus_q, aux: slope(upstream, flat_q, softmax_minus_q, aux),
    )


def _branch_under_xla(q: Any, logits: Any, spec: PolySpec, one_hot: Any, hard: Callable) -> Any:
    """Poly-1 of any rows under XLA, where each branch of the ``tf.cond`` computes its own rows.

    One-hot batches: the fused op, whose ``softmax - q`` times ``dl/dc`` per row is the
    gradient. Other batches: one pass of row sums over the shifted logits (``m = max z``,
    ``e = exp(z - m)``: ``sum e``, ``sum q e``, ``sum q (z - m)``, ``sum q``), then the
    elementwise gradient ``p (S + eps T) - q (1 + eps p)`` for a unit upstream, with
    ``c = S log(sum e) - sum q (z - m)`` (two non-negative terms: no cancellation). Both
    branches return an ``(N, C)`` tensor that the backward scales per row, so the
    backward has no branch and XLA keeps nothing else between the passes.
    """
    epsilon, classes = spec.epsilons[0], int(logits.shape[-1])

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        def one_hot_rows() -> Any:
            _, ce, softmax_minus_q = _fused(q, z)
            loss, dloss_dce = hard(ce)
            return loss, dloss_dce, softmax_minus_q

        def any_rows() -> Any:
            flat_z, flat_q = tf.reshape(z, [-1, classes]), tf.reshape(q, [-1, classes])
            shifted = flat_z - tf.reduce_max(flat_z, -1, keepdims=True)
            exp = tf.exp(shifted)
            exp_sum, total = tf.reduce_sum(exp, -1), tf.reduce_sum(flat_q, -1)
            log_sum = tf.math.log(exp_sum)
            p = tf.exp(shifted - tf.expand_dims(log_sum, -1))  # recomputed: XLA keeps no (N, C) temporary
            overlap = tf.reduce_sum(flat_q * exp, -1) / exp_sum
            slope = p * tf.expand_dims(total + epsilon * overlap, -1) - flat_q * (1.0 + epsilon * p)
            shifted_sum = tf.reduce_sum(flat_q * shifted, -1)
            loss = poly1_from_row_sums(log_sum, overlap, shifted_sum, total, spec, OPS)
            return loss, tf.ones_like(loss), slope

        loss, row, slope = tf.cond(one_hot, one_hot_rows, any_rows)

        def grad(upstream: Any) -> Any:
            return tf.reshape(tf.expand_dims(tf.reshape(upstream, [-1]) * row, -1) * slope, tf.shape(z))

        return tf.reshape(loss, tf.shape(z)[:-1]), grad

    return loss_of(logits)


def any_member_dense(q: Any, logits: Any, one_hot: Any, hard: Callable, general: Callable) -> Any:
    """Any member: ``hard(c)`` and ``general(q, z)`` written with ``keras.ops``, differentiated by a tape."""

    def hard_and_slope(ce: Any) -> Any:
        # ``hard`` sees ``c`` in the rows' shape (its per-class weights are ``sum(q * w)`` over q's rows),
        # ``dense_softmax`` the flat rows.
        rows = tf.reshape(ce, tf.shape(q)[:-1])
        with tf.GradientTape() as tape:
            tape.watch(rows)
            loss = hard(rows)
        return tf.reshape(loss, [-1]), tf.reshape(tape.gradient(loss, rows), [-1])

    def soft(flat_q: Any, ce: Any, softmax_minus_q: Any, z: Any) -> Any:
        return general(q, z), tf.zeros_like(ce)

    def soft_grad(upstream: Any, z: Any, flat_q: Any, softmax_minus_q: Any, aux: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = general(q, z)
        return tape.gradient(loss, z, output_gradients=upstream)

    return dense_softmax(q, logits, one_hot, hard_and_slope, soft, soft_grad)
