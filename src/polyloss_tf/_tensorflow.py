"""TensorFlow backend only: target rows from logits at about the cost of Keras' own cross-entropy.

Imported by :mod:`polyloss_tf._impl` only when Keras runs on TensorFlow. Both
routes start from TensorFlow's fused ``SoftmaxCrossEntropyWithLogits`` (what
``keras.losses.CategoricalCrossentropy`` runs), which returns the cross-entropy
``c`` of each row and ``softmax - q``, and put the whole gradient in one
``tf.custom_gradient``:

* :func:`poly1_dense`, Poly-1 for any rows: ``c + eps (sum q - sum q p)``, with
  ``p = (softmax - q) + q``; the gradient is elementwise,
  ``g (p_j (sum q + eps sum_c q_c p_c) - q_j (1 + eps p_j))`` (SPEC section 4).
  In graph mode a ``tf.cond`` on ``one_hot`` uses ``c`` alone for one-hot
  batches (``p_t = exp(-c)``), so their gradient is Keras' own times a number
  per row; under XLA the elementwise form fuses, and no branch is taken.
* :func:`dense_softmax_with_logits`, every other member, graph mode: one-hot
  batches scale the fused op's gradient by ``dl/dc``; other batches
  differentiate the per-class formula (only that branch pays for it).

``1 - p_t`` of a one-hot row is ``2 t / (1 + t)`` with ``t = tanh(c / 2)``: the
same quantity as ``-expm1(-c)`` with no cancellation as ``p_t -> 1`` and about
half its cost on TensorFlow, which vectorises ``tanh``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf


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


def poly1_dense(q: Any, logits: Any, epsilon: float, one_hot: Any = None) -> Any:
    """Per-row Poly-1 of target rows ``q`` (classes last); ``one_hot`` (a scalar bool tensor) enables the branch."""

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        flat_q, ce, softmax_minus_q = _fused(q, z)

        def soft() -> Any:
            total = tf.reduce_sum(flat_q, -1)
            overlap = tf.reduce_sum(flat_q * (softmax_minus_q + flat_q), -1)
            return ce + epsilon * (total - overlap), total, overlap

        def hard() -> Any:
            x = one_minus_exp_neg(ce)
            return ce + epsilon * x, x, x

        loss, a, b = soft() if one_hot is None else tf.cond(one_hot, hard, soft)

        def grad(upstream: Any) -> Any:
            g = tf.reshape(upstream, [-1, 1])

            def soft_grad() -> Any:
                p = softmax_minus_q + flat_q
                return g * (p * tf.reshape(a + epsilon * b, [-1, 1]) - flat_q * (1.0 + epsilon * p))

            def hard_grad() -> Any:  # d(c + eps x)/dc = 1 + eps (1 - x)
                return (g * tf.reshape(1.0 + epsilon * (1.0 - a), [-1, 1])) * softmax_minus_q

            out = soft_grad() if one_hot is None else tf.cond(one_hot, hard_grad, soft_grad)
            return tf.reshape(out, tf.shape(z))

        return tf.reshape(loss, tf.shape(z)[:-1]), grad

    return loss_of(logits)


def dense_softmax_with_logits(
    q: Any, logits: Any, one_hot: Any, hard: Callable[[Any, Any], Any], general: Callable[[Any, Any], Any]
) -> Any:
    """Per-row loss of rows ``q``: ``hard(c, 1 - p_t)`` for one-hot batches, ``general(q, z)`` otherwise.

    Both callables are written with ``keras.ops``; this function only arranges
    when each runs and how the gradient flows. ``q`` gets no gradient, as with
    Keras' categorical losses on logits.
    """

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        _, ce, softmax_minus_q = _fused(q, z)
        ce = tf.reshape(ce, tf.shape(z)[:-1])
        x = one_minus_exp_neg(ce)
        loss = tf.cond(one_hot, lambda: hard(ce, x), lambda: general(q, z))

        def grad(upstream: Any) -> Any:
            def one_hot_grad() -> Any:
                # dl/dc = dl/dc|x + dl/dx dx/dc with x = 1 - p_t and dx/dc = 1 - x: per row only.
                with tf.GradientTape() as tape:
                    tape.watch([ce, x])
                    value = hard(ce, x)
                d_ce, d_x = tape.gradient(
                    value, [ce, x], output_gradients=upstream, unconnected_gradients=tf.UnconnectedGradients.ZERO
                )
                d_ce = tf.reshape(d_ce + d_x * (1.0 - x), [-1, 1])
                return tf.reshape(d_ce * softmax_minus_q, tf.shape(z))

            def soft_grad() -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    value = general(q, z)
                return tape.gradient(value, z, output_gradients=upstream)

            return tf.cond(one_hot, one_hot_grad, soft_grad)

        return loss, grad

    return loss_of(logits)
