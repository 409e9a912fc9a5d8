"""TensorFlow backend only: dense softmax targets from logits at the cost of Keras' own cross-entropy.

With float targets a loss cannot know whether the rows are one-hot. For one-hot
rows every softmax member is a function of the fused cross-entropy ``c`` alone
(``p_t = exp(-c)``, SPEC §4); soft rows need ``sum_c q_c l(p_c)``, a pass over
the classes. The keras.ops path (``_kernels.softmax_from_dense``) decides with
an ``ops.cond`` whose gradient makes the skipped branch produce zero tensors as
large as the logits. Here the decision and both gradients live inside one
``tf.custom_gradient``:

* forward: TensorFlow's fused ``SoftmaxCrossEntropyWithLogits`` (what
  ``keras.losses.CategoricalCrossentropy`` runs) gives ``c`` and its gradient
  ``softmax - q``; one read of the targets tells whether the batch is one-hot
  (``all_rows_one_hot``); a ``tf.cond`` picks ``hard(c, 1 - p_t)`` or the
  general formula;
* backward: for one-hot rows the fused op's gradient is scaled by ``dl/dc``
  (per example, from the polynomial alone), as Keras scales it by the upstream
  gradient; soft rows differentiate the general formula (only that branch pays
  for it).

At 65536 examples of 10 classes every per-example op counts (TensorFlow's
``expm1`` alone costs 2-3% of the step), so ``1 - p_t`` is computed as
``2 t / (1 + t)`` with ``t = tanh(c / 2)``: the same quantity with no
cancellation as ``p_t -> 1`` (``tanh`` keeps its relative accuracy near 0 and
``1 + t`` lies in [1, 2]), as accurate as ``expm1`` in float32 (both within
3e-7 relative of float64) and half its cost, because TensorFlow vectorises ``tanh``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf


def compiling_with_xla() -> bool:
    """Whether the function being traced is compiled by XLA (``jit_compile=True``).

    XLA on CPU runs a ``tf.cond`` inside a custom gradient far slower than the
    ``keras.ops`` formulation, so that path is kept for XLA. TensorFlow has no
    public API for this; its private helper is used when present, and without it
    the answer is ``False`` (the graph-mode path, correct under XLA too).
    """
    try:
        from tensorflow.python.framework import ops as framework_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a future TensorFlow without the private modules
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(framework_ops.get_default_graph()))


def all_rows_one_hot(flat_targets: Any) -> Any:
    """Scalar bool: every row of the ``(rows, classes)`` distributions ``flat_targets`` is one-hot.

    A distribution has ``sum_c q_c**2 <= 1``, with equality only when it is
    one-hot, so the sum of squares over the batch equals the number of rows
    exactly when every row is one-hot. ``tf.nn.l2_loss`` (half that sum) reads
    the targets once. The sum is a float32 sum: a batch whose rows fall short of
    one-hot by less than its rounding (about ``rows * 6e-8`` in all) is treated
    as one-hot. Rows that are not distributions can balance each other out (a
    multi-hot row next to an all-zero row); either kind alone is recognised.
    """
    rows = tf.cast(tf.shape(flat_targets)[0], flat_targets.dtype)
    return tf.equal(2.0 * tf.nn.l2_loss(flat_targets), rows)


def one_minus_exp_neg(ce: Any) -> Any:
    """``1 - exp(-ce) = -expm1(-ce)`` for ``ce >= 0``, as ``2 tanh(ce/2) / (1 + tanh(ce/2))``."""
    t = tf.math.tanh(0.5 * ce)
    return 2.0 * t / (1.0 + t)


def dense_softmax_with_logits(
    q: Any,
    logits: Any,
    hard: Callable[[Any, Any], Any],
    general: Callable[[Any, Any, Any], Any],
) -> Any:
    """Per-example softmax loss of target rows ``q`` (classes on the last axis) from ``logits``.

    ``hard(ce, one_minus_p)`` is the loss of one-hot rows from their
    cross-entropy ``ce`` and ``1 - p_t``; ``general(q, logits, ce)`` is the loss
    of any rows, given their cross-entropy or ``None`` (then it computes it).
    Both are written with ``keras.ops``; this function only arranges when each
    runs and how the gradient flows. ``q`` gets no gradient, as with Keras'
    categorical losses on logits.
    """
    classes = int(logits.shape[-1])
    flat_q = tf.reshape(q, [-1, classes])
    one_hot = all_rows_one_hot(flat_q)

    @tf.custom_gradient
    def loss_of(z: Any) -> Any:
        ce, softmax_minus_q = tf.raw_ops.SoftmaxCrossEntropyWithLogits(
            features=tf.reshape(z, [-1, classes]), labels=flat_q
        )
        ce = tf.reshape(ce, tf.shape(z)[:-1])
        x = one_minus_exp_neg(ce)  # per example; kept for the backward pass
        loss = tf.cond(one_hot, lambda: hard(ce, x), lambda: general(q, z, ce))

        def grad(upstream: Any) -> Any:
            def one_hot_grad() -> Any:
                # dl/dce = dl/dce|x + dl/dx * dx/dce with x = 1 - p_t and dx/dce = 1 - x: per example only.
                with tf.GradientTape() as tape:
                    tape.watch([ce, x])
                    value = hard(ce, x)
                d_ce, d_x = tape.gradient(
                    value, [ce, x], output_gradients=upstream, unconnected_gradients=tf.UnconnectedGradients.ZERO
                )
                d_ce = d_ce + d_x * (1.0 - x)
                return tf.reshape(tf.reshape(d_ce, [-1, 1]) * softmax_minus_q, tf.shape(z))

            def soft_grad() -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    value = general(q, z, None)
                return tape.gradient(value, z, output_gradients=upstream)

            return tf.cond(one_hot, one_hot_grad, soft_grad)

        return loss, grad

    return loss_of(logits)
