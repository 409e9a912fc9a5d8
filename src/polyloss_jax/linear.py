"""PolyLoss on a linear head without the logit matrix: language-model vocabularies in JAX.

For next-token prediction the logits ``hidden @ weight.T`` have one row per token and
one column per vocabulary entry; at 128k words they, their softmax and their gradient
dominate a training step's memory. With hard labels every softmax PolyLoss is an
elementwise function of the per-token cross-entropy ``c = logsumexp(z) - z_y`` (SPEC
section 4), so the loss needs, per token, only the log-normaliser and the label's
logit. This module computes both in tiles of ``chunk_size`` tokens by at most
``VOCAB_BLOCK`` vocabulary entries, inside a ``jax.custom_vjp`` whose backward
recomputes each tile's logits and writes the gradients of ``hidden`` and ``weight``
tile by tile. The compiled program's temporary memory is a few tiles plus the
fp32 gradient of ``hidden``, never a ``(tokens, vocab)`` array.

The polynomial itself comes from ``polyloss_core.series.loss_from_ce``, applied to
the ``(tokens,)`` vector of cross-entropies with ordinary JAX autodiff, so ``epsilon``
may be traced and ``where`` masks tokens exactly as in the unfused losses.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511; the chunked linear +
cross-entropy follows Wijmans et al., "Cut Your Losses in Large-Vocabulary Language
Models", arXiv:2411.09009.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from polyloss_core import PolySpec, check_family, checks, poly1_spec
from polyloss_core.series import loss_from_ce, poly1_class_sum, smoothing_weights

from . import _validate
from ._ops import OPS

__all__ = [
    "VOCAB_BLOCK",
    "linear_poly1_cross_entropy_with_integer_labels",
    "linear_poly_loss",
]

#: Vocabulary entries per tile: the inner dimension of the tiling (the whole vocabulary when smaller).
VOCAB_BLOCK = 2048
#: Tokens per tile when ``chunk_size`` is ``None`` (all tokens when fewer).
DEFAULT_CHUNK = 1024


# --------------------------------------------------------------------------- public functions
def linear_poly1_cross_entropy_with_integer_labels(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: Any = 1.0,
    where: jax.typing.ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_axis: str | None = None,
) -> jax.Array:
    """Poly-1 cross-entropy of a linear head, per token, without materialising the logits.

    With logits ``z = hidden @ weight.T`` (``weight`` laid out ``(vocab, dim)`` like
    ``torch.nn.Linear.weight``, a tied embedding table, or a flax ``nnx.Linear``
    kernel transposed) and ``c = logsumexp(z) - z_y``:

        loss = c + epsilon (1 - exp(-c))      (1 - exp(-c) computed as -expm1(-c))

    Value and gradients equal
    ``poly1_cross_entropy_with_integer_labels(hidden @ weight.T, labels, epsilon=epsilon, where=where)``
    to float32 rounding, but the ``(tokens, vocab)`` logits are never stored: they
    are computed in tiles of ``chunk_size`` tokens by at most ``VOCAB_BLOCK``
    vocabulary entries, in the forward pass and again in the backward pass. Temporary
    memory is a few tiles plus the float32 gradient of ``hidden``.

    bfloat16 / float16 inputs are multiplied with float32 accumulation and the loss is
    float32; gradients keep the inputs' dtypes. The function is differentiable once
    (a ``jax.custom_vjp``): ``jax.grad`` and ``jax.value_and_grad`` work with respect to
    ``hidden``, ``weight`` and ``epsilon``, second derivatives do not.

    Out-of-range labels: when reading ``labels`` (and ``where``, if given) needs no
    device transfer (NumPy arrays, lists, JAX arrays on CPU), an unmasked label outside
    ``[0, vocab)`` raises ``ValueError``; accelerator arrays are never copied back to
    check them, and inside ``jax.jit`` such a
    token's loss is ``NaN`` (and its gradient zero), never a plausible number. Masked
    tokens (``where`` false, e.g. padding labelled ``-100``) are not checked.

    Args:
        hidden: final hidden states, floating dtype, shape ``[..., dim]``.
        weight: the output projection, shape ``(vocab, dim)``, same dtype as ``hidden``.
        labels: integer next-token indices in ``[0, vocab)``, shape ``[...]``.
        epsilon: the Poly-1 coefficient. A Python or NumPy number ``>= -1`` (checked),
            or a scalar JAX array, which may be traced (a schedule under ``jit``,
            ``vmap`` over epsilons) and is used as given. Default ``1.0``.
        where: optional boolean mask of shape ``[...]`` (broadcastable); masked tokens
            give ``0`` and no gradient, as in optax. Default ``None``.
        chunk_size: tokens per tile, an int ``>= 1``; ``None`` (default) uses
            ``min(tokens, 1024)``. Smaller tiles use less memory, larger ones run
            closer to matrix-multiply speed.
        vocab_axis: for tensor parallelism inside ``jax.shard_map``: the mesh axis over
            which ``weight`` is split by rows (each device holds ``vocab / n`` consecutive
            vocabulary entries, device ``i`` the ``i``-th block; ``hidden`` and ``labels``
            the same on every device of that axis). Each device tiles only its block and
            the devices exchange three ``(tokens,)`` vectors; the weight and the logits are
            never gathered. ``None`` (default): ``weight`` holds the whole vocabulary.

    Returns:
        The per-token loss, shape ``[...]``, in the inputs' dtype (float32 for 16-bit inputs).

    Raises:
        TypeError: non-floating or different dtypes of ``hidden`` and ``weight``,
            non-integer ``labels``, non-boolean ``where``, a non-scalar or non-real ``epsilon``.
        ValueError: ``weight`` not 2-D, ``hidden``'s last dimension not ``weight.shape[1]``,
            ``labels`` / ``where`` of the wrong shape, ``chunk_size < 1``, ``epsilon < -1``,
            or (host labels) a label outside ``[0, vocab)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> hidden = jnp.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]])
        >>> weight = jnp.array([[1.0, 0.5], [-1.0, 0.0], [0.2, 1.0], [0.0, -0.5]])
        >>> labels = jnp.array([0, 3, 2])
        >>> loss = linear_poly1_cross_entropy_with_integer_labels(hidden, weight, labels, epsilon=2.0)
        >>> [round(float(v), 4) for v in loss]
        [1.6448, 1.8975, 1.1524]
        >>> from polyloss_jax import poly1_cross_entropy_with_integer_labels
        >>> bool(jnp.allclose(loss, poly1_cross_entropy_with_integer_labels(hidden @ weight.T, labels, epsilon=2.0)))
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    eps = _validate.epsilon(epsilon)
    if isinstance(eps, float):
        return linear_poly_loss(
            hidden, weight, labels, poly1_spec(eps), where=where, chunk_size=chunk_size, vocab_axis=vocab_axis
        )
    return _linear_loss(hidden, weight, labels, poly1_spec(1.0), where, chunk_size, eps, vocab_axis)


def linear_poly_loss(
    hidden: jax.typing.ArrayLike,
    weight: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    spec: PolySpec,
    *,
    where: jax.typing.ArrayLike | None = None,
    chunk_size: int | None = None,
    vocab_axis: str | None = None,
) -> jax.Array:
    """Any softmax PolyLoss of a linear head with integer labels, per token, without the logits.

    With ``z = hidden @ weight.T``, ``c = logsumexp(z) - z_y`` and ``x = 1 - p_y = -expm1(-c)``:

        loss = w_y (c x^gamma + sum_j eps_j x^(j + gamma))

    (``eps = spec.epsilons``, ``gamma = spec.gamma``, ``w_y`` from ``spec.alpha``: one
    number or one weight per vocabulary entry, 1 when ``None``). With
    ``spec.label_smoothing = s`` (cross-entropy and Poly-1 with ``gamma = 0`` and no
    per-class ``alpha``) the smoothed loss ``(1 - s) l(p_y) + (s / V) sum_c l(p_c)`` uses the
    closed form ``sum_c l(p_c) = V logsumexp(z) - sum_c z_c + eps (V - 1)``.

    Value and gradients equal ``poly_loss(hidden @ weight.T, labels, spec, where=where)``
    to float32 rounding; the tiling, dtypes, masking, label checks and the one-derivative
    limit are those of ``linear_poly1_cross_entropy_with_integer_labels``.

    Args:
        hidden: final hidden states, floating dtype, shape ``[..., dim]``.
        weight: the output projection, shape ``(vocab, dim)``, same dtype as ``hidden``.
        labels: integer next-token indices in ``[0, vocab)``, shape ``[...]``.
        spec: a softmax ``PolySpec``, e.g. ``PolySpec.poly1(1.0)``, ``PolySpec.poly_n(1.0, 0.5)``
            or ``PolySpec.poly1_focal(1.0, 2.0)``.
        where: optional boolean token mask of shape ``[...]``; masked tokens give ``0``. Default ``None``.
        chunk_size: tokens per tile (int ``>= 1``); ``None`` (default) is ``min(tokens, 1024)``.
        vocab_axis: ``shard_map`` mesh axis splitting ``weight`` by vocabulary rows, as in
            ``linear_poly1_cross_entropy_with_integer_labels``. Default ``None``.

    Returns:
        The per-token loss, shape ``[...]``, in the inputs' dtype (float32 for 16-bit inputs).

    Raises:
        TypeError: as ``linear_poly1_cross_entropy_with_integer_labels``, or ``spec``
            not a ``PolySpec``.
        ValueError: as ``linear_poly1_cross_entropy_with_integer_labels``, a per-class
            ``alpha`` whose length is not the vocabulary size, or label smoothing with a
            focal term, several epsilons or per-class ``alpha`` (use ``poly_loss`` on the logits).

    Examples:
        >>> import jax.numpy as jnp
        >>> from polyloss_core import PolySpec
        >>> hidden = jnp.array([[1.0, 0.0], [0.5, -1.0]])
        >>> weight = jnp.array([[1.0, 0.5], [-1.0, 0.0], [0.2, 1.0]])
        >>> loss = linear_poly_loss(hidden, weight, jnp.array([0, 2]), PolySpec.poly1_focal(1.0, 2.0))
        >>> [round(float(v), 4) for v in loss]
        [0.1129, 1.527]

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, https://arxiv.org/abs/2204.12511
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a polyloss_core.PolySpec, got {type(spec).__name__}")
    return _linear_loss(hidden, weight, labels, spec, where, chunk_size, None, vocab_axis)


# --------------------------------------------------------------------------- checks
def _check_inputs(
    hidden: Any, weight: Any, labels: Any, where: Any, chunk_size: Any
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, int]:
    """The arrays as JAX arrays of checked dtypes and shapes, and the tile height."""
    h = _validate.as_array("hidden", hidden)
    w = _validate.as_array("weight", weight)
    for name, array in (("hidden", h), ("weight", w)):
        if not jnp.issubdtype(array.dtype, jnp.floating):
            raise TypeError(f"{name} must have a floating-point dtype, got {array.dtype}")
    if h.dtype != w.dtype:
        raise TypeError(f"hidden and weight must have the same dtype, got hidden {h.dtype} and weight {w.dtype}")
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"weight must have shape (vocab, dim) with vocab >= 1, got {w.shape}")
    if h.ndim == 0 or h.shape[-1] != w.shape[1]:
        raise checks.shape_error(
            "hidden", ("...", w.shape[1]), h.shape, f"its last dimension being weight's dim (weight shape {w.shape})"
        )
    y = _validate.as_array("labels", labels)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.shape != h.shape[:-1]:
        raise checks.shape_error("labels", h.shape[:-1], y.shape, "one label per row of hidden")
    mask = None
    if where is not None:
        mask = _validate.as_array("where", where)
        if mask.dtype != jnp.bool_:
            raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
        try:
            mask = jnp.broadcast_to(mask, y.shape)
        except ValueError:
            raise checks.shape_error("where", y.shape, mask.shape, "broadcastable to the labels' shape") from None
    tokens = math.prod(y.shape)
    if chunk_size is None:
        rows = min(max(tokens, 1), DEFAULT_CHUNK)
    else:
        rows = checks.check_int("chunk_size", chunk_size)
        if rows < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got chunk_size={rows}")
        rows = min(rows, max(tokens, 1))
    return h, w, y, mask, rows


def _check_host_labels(labels: Any, where: Any, vocab: int) -> None:
    """Raise for an unmasked out-of-range label, but only when reading the values needs no device transfer.

    The adapter's one host-copy rule (``_validate.host_labels``): NumPy arrays, Python values and
    JAX arrays on CPU devices are read; tracers and accelerator arrays never are (their bad labels
    give ``NaN``).
    """
    values = _validate.host_labels(labels)
    mask = None if where is None else _validate.host_labels(where)
    if values is None or values.size == 0 or (where is not None and mask is None):
        return
    bad = (values < 0) | (values >= vocab)
    if mask is not None:
        bad &= np.broadcast_to(mask, values.shape)
    if bad.any():
        raise checks.class_index_error(values[bad].flat[0], vocab, name="labels")


# --------------------------------------------------------------------------- the loss on per-token statistics
def _linear_loss(
    hidden: Any,
    weight: Any,
    labels: Any,
    spec: PolySpec,
    where: Any,
    chunk_size: Any,
    epsilon: Any,
    vocab_axis: str | None = None,
) -> jax.Array:
    h, w, y, mask, rows = _check_inputs(hidden, weight, labels, where, chunk_size)
    if vocab_axis is not None and not isinstance(vocab_axis, str):
        raise TypeError(f"vocab_axis must be a shard_map mesh axis name (str) or None, got {vocab_axis!r}")
    # With vocab_axis, weight is this device's block of rows; the vocabulary is all blocks.
    shards = 1 if vocab_axis is None else lax.axis_size(vocab_axis)
    vocab = w.shape[0] * shards
    check_family(spec, "softmax", vocab)
    smoothing = spec.label_smoothing
    if smoothing and (spec.gamma != 0 or len(spec.epsilons) > 1 or isinstance(spec.alpha, tuple)):
        raise ValueError(
            f"the fused linear loss supports label_smoothing={smoothing} only for cross-entropy and Poly-1 "
            f"without per-class alpha, got {spec!r}; compute the logits and use polyloss_jax.poly_loss instead"
        )
    _check_host_labels(labels, where, vocab)
    work = jnp.float32 if jnp.finfo(h.dtype).bits < 32 else h.dtype
    if y.dtype.itemsize < 4:
        y = y.astype(jnp.int32)

    shape = y.shape
    flat_h = h.reshape(-1, h.shape[-1])
    flat_y = y.reshape(-1)
    stats = _vocab_stats(flat_h, w, flat_y, rows, bool(smoothing), vocab_axis)
    lse, label_logit = stats[0], stats[1]
    ce = lse - label_logit
    if epsilon is not None:
        epsilon = jnp.asarray(epsilon, work)
    loss = loss_from_ce(ce, -jnp.expm1(-ce), spec, OPS, epsilon=epsilon)
    if isinstance(spec.alpha, tuple):
        loss = loss * jnp.take(jnp.asarray(spec.alpha, work), flat_y, mode="clip")
    elif spec.alpha is not None:
        loss = loss * spec.alpha
    if smoothing:
        keep, uniform = smoothing_weights(spec, vocab)
        eps = epsilon if epsilon is not None or spec.epsilons else 0.0
        class_sum = poly1_class_sum(vocab * lse - stats[2], spec, vocab, epsilon=eps)
        loss = keep * loss + uniform * (class_sum if spec.alpha is None else spec.alpha * class_sum)
    valid = (flat_y >= 0) & (flat_y < vocab)
    loss = jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))
    if mask is not None:
        loss = jnp.where(mask.reshape(-1), loss, jnp.zeros((), loss.dtype))
    return loss.reshape(shape)


def _vocab_stats(
    h: jax.Array, w: jax.Array, y: jax.Array, rows: int, with_sum: bool, vocab_axis: str | None
) -> tuple[jax.Array, ...]:
    """Per-token statistics over the whole vocabulary; with ``vocab_axis``, combined across its devices.

    Each device computes its block's log-normaliser, label logit (0 when the label is in
    another block) and logit sum; a ``pmax`` / ``psum`` of ``(tokens,)`` vectors combines them.
    """
    block = min(VOCAB_BLOCK, w.shape[0])
    if vocab_axis is None:
        return _token_stats(rows, block, with_sum, *_same_varying_axes(h, w, y))
    local = y - lax.axis_index(vocab_axis) * w.shape[0]
    local = jnp.where((local >= 0) & (local < w.shape[0]), local, -1)
    stats = _token_stats(rows, block, with_sum, *_same_varying_axes(h, w, local))
    top = lax.pmax(lax.stop_gradient(stats[0]), vocab_axis)
    lse = top + jnp.log(lax.psum(jnp.exp(stats[0] - top), vocab_axis))
    return (lse, *(lax.psum(s, vocab_axis) for s in stats[1:]))


def _same_varying_axes(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """Inside ``shard_map``: mark every array as varying over the mesh axes any of them varies over.

    With a per-device shard of ``hidden`` and a replicated ``weight`` (data parallelism), the
    weight's gradient varies per device. Casting the weight to "varying" *before* the custom
    VJP lets JAX's own transpose of that cast sum the per-device gradients (a ``psum``), as it
    does for ordinary code. Outside ``shard_map`` nothing varies and nothing changes.
    """
    axes = [_varying(a) for a in arrays]
    union = frozenset().union(*axes)
    if not union:
        return arrays
    out = []
    for array, have in zip(arrays, axes, strict=True):
        missing = tuple(sorted(union - have))
        if missing:
            array = lax.pcast(array, missing, to="varying")
        out.append(array)
    return tuple(out)


def _varying(x: jax.Array) -> frozenset[str]:
    """The ``shard_map`` mesh axes ``x`` varies over (empty outside ``shard_map``)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", frozenset()))


# --------------------------------------------------------------------------- tiled statistics with a custom VJP
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _token_stats(
    rows: int, block: int, with_sum: bool, h: jax.Array, w: jax.Array, y: jax.Array
) -> tuple[jax.Array, ...]:
    """Per token: ``logsumexp(h @ w.T)``, the label's logit and (``with_sum``) the sum of the logits, in fp32."""
    return _stats_forward(h, w, y, rows, block, with_sum)


def _stats_forward(
    h: jax.Array, w: jax.Array, y: jax.Array, rows: int, block: int, with_sum: bool
) -> tuple[jax.Array, ...]:
    acc = jnp.float32 if jnp.finfo(h.dtype).bits < 32 else h.dtype
    n = h.shape[0]
    hp = _pad_rows(h, rows)
    vocab = w.shape[0]

    def vocab_step(j: Any, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        _, w_j, fresh = _vocab_tile(w, j, block)

        def row_step(i: Any, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            top, total = carry
            h_i = lax.dynamic_slice_in_dim(hp, i * rows, rows)
            z = jnp.dot(h_i, w_j.T, preferred_element_type=acc)
            if fresh is not None:
                z = jnp.where(fresh, z, -jnp.inf)
            old_top = lax.dynamic_slice_in_dim(top, i * rows, rows)
            old_total = lax.dynamic_slice_in_dim(total, i * rows, rows)
            new_top = jnp.maximum(old_top, z.max(axis=1))
            new_total = old_total * jnp.exp(old_top - new_top) + jnp.exp(z - new_top[:, None]).sum(axis=1)
            top = lax.dynamic_update_slice_in_dim(top, new_top, i * rows, 0)
            total = lax.dynamic_update_slice_in_dim(total, new_total, i * rows, 0)
            return top, total

        return lax.fori_loop(0, hp.shape[0] // rows, row_step, carry)

    init = (_zeros((hp.shape[0],), acc, hp, w, fill=-jnp.inf), _zeros((hp.shape[0],), acc, hp, w))
    top, total = lax.fori_loop(0, -(-vocab // block), vocab_step, init)
    lse = (top + jnp.log(total))[:n]
    rows_of_labels = jnp.take(w, y, axis=0, mode="clip").astype(acc)
    # A label outside this weight's rows contributes 0 (another vocabulary block holds it).
    label_logit = jnp.where((y >= 0) & (y < vocab), jnp.sum(h.astype(acc) * rows_of_labels, axis=-1), 0.0)
    if not with_sum:
        return lse, label_logit
    logit_sum = jnp.dot(h, jnp.sum(w.astype(acc), axis=0).astype(h.dtype), preferred_element_type=acc)
    return lse, label_logit, logit_sum


def _zeros(shape: tuple[int, ...], dtype: Any, *sources: jax.Array, fill: float = 0.0) -> jax.Array:
    """A constant loop carry typed like ``sources``.

    Inside ``shard_map`` a carry must vary over the same mesh axes as the values the loop
    writes into it; adding a zero scalar ``zeros_like`` each source gives it their type.
    """
    out = jnp.full(shape, fill, dtype)
    for source in sources:
        out = out + jnp.zeros_like(source, dtype=dtype, shape=())
    return out


def _pad_rows(a: jax.Array, rows: int, value: Any = 0) -> jax.Array:
    extra = -a.shape[0] % rows
    if not extra:
        return a
    return jnp.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1), constant_values=value)


def _vocab_tile(w: jax.Array, j: Any, block: int) -> tuple[Any, jax.Array, jax.Array | None]:
    """Vocabulary tile ``j``: its first row, the rows, and which columns no earlier tile covered.

    The last tile starts at ``vocab - block`` so every tile has the same static size; the
    columns it shares with the previous tile are marked stale (``None`` when tiles never overlap).
    """
    vocab = w.shape[0]
    start = jnp.minimum(j * block, vocab - block)
    w_j = lax.dynamic_slice_in_dim(w, start, block)
    if vocab % block == 0:
        return start, w_j, None
    return start, w_j, start + jnp.arange(block) >= j * block


def _stats_fwd(
    rows: int, block: int, with_sum: bool, h: jax.Array, w: jax.Array, y: jax.Array
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
    stats = _stats_forward(h, w, y, rows, block, with_sum)
    return stats, (h, w, y, stats[0])


def _stats_bwd(
    rows: int, block: int, with_sum: bool, residuals: tuple[jax.Array, ...], cotangents: tuple[jax.Array, ...]
) -> tuple[jax.Array, jax.Array, None]:
    h, w, y, lse = residuals
    acc = lse.dtype
    n, dim = h.shape
    vocab = w.shape[0]
    hp = _pad_rows(h, rows)
    yp = _pad_rows(y, rows, -1)
    # Padded rows get zero cotangents, so they add nothing to either gradient.
    g_lse, g_label = (_pad_rows(g.astype(acc), rows) for g in cotangents[:2])
    g_sum = _pad_rows(cotangents[2].astype(acc), rows) if with_sum else None
    lse_p = _pad_rows(lse, rows)
    sources = (hp, w, lse_p, g_lse, g_label)

    def vocab_step(j: Any, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        dh, dw = carry
        start, w_j, fresh = _vocab_tile(w, j, block)
        # Columns an earlier tile covered still get their (identical) weight gradient
        # rewritten, but must not reach the hidden gradient twice.
        w_dh = w_j if fresh is None else jnp.where(fresh[:, None], w_j, jnp.zeros((), w.dtype))
        columns = start + jnp.arange(block)

        def row_step(i: Any, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
            dh, dw_j = carry
            lo = i * rows
            h_i = lax.dynamic_slice_in_dim(hp, lo, rows)
            z = jnp.dot(h_i, w_j.T, preferred_element_type=acc)
            p = jnp.exp(z - lax.dynamic_slice_in_dim(lse_p, lo, rows)[:, None])
            g_i = lax.dynamic_slice_in_dim(g_lse, lo, rows)[:, None]
            hit = columns[None, :] == lax.dynamic_slice_in_dim(yp, lo, rows)[:, None]
            dz = g_i * p + jnp.where(hit, lax.dynamic_slice_in_dim(g_label, lo, rows)[:, None], 0.0)
            if g_sum is not None:
                dz = dz + lax.dynamic_slice_in_dim(g_sum, lo, rows)[:, None]
            dh_i = lax.dynamic_slice_in_dim(dh, lo, rows) + jnp.dot(dz, w_dh.astype(acc))
            dh = lax.dynamic_update_slice_in_dim(dh, dh_i, lo, 0)
            dw_j = dw_j + jnp.dot(dz.T, h_i.astype(acc))
            return dh, dw_j

        dh, dw_j = lax.fori_loop(0, hp.shape[0] // rows, row_step, (dh, _zeros((block, dim), acc, *sources)))
        dw = lax.dynamic_update_slice_in_dim(dw, dw_j.astype(w.dtype), start, 0)
        return dh, dw

    init = (_zeros(hp.shape, acc, *sources), _zeros(w.shape, w.dtype, *sources))
    dh, dw = lax.fori_loop(0, -(-vocab // block), vocab_step, init)
    return dh[:n].astype(h.dtype), dw, None


_token_stats.defvjp(_stats_fwd, _stats_bwd)
