"""PolyLoss on a linear head without the logit matrix: language-model vocabularies in JAX.

For next-token prediction the logits ``hidden @ weight.T`` have one row per token and
one column per vocabulary entry; at 128k words they, their softmax and their gradient
dominate a training step's memory. With hard labels every softmax PolyLoss is an
elementwise function of the per-token cross-entropy ``c = logsumexp(z) - z_y`` (SPEC
section 4), so the loss needs, per token, only the log-normaliser and the label's
logit. Two routes compute them without a ``(tokens, vocab)`` array, each a
``jax.custom_vjp``:

* **one pass** (float32 / float64 inputs, the whole vocabulary on each device): chunks
  of ``chunk_size`` tokens by the whole vocabulary. Each chunk's logits give the loss
  and, in the same pass, the gradients of ``hidden`` and ``weight`` for a cotangent of 1
  per token (as Liger Kernel's fused linear cross-entropy does): three matrix products
  per chunk, and the weight's gradient is accumulated block by block of ``VOCAB_BLOCK``
  entries, in place. The backward scales them by the cotangent; where tokens' cotangents
  differ (not a mean or a sum) it recomputes the difference's share of the weight
  gradient chunk by chunk. With ``where``, kept tokens are moved first (on the device) and
  the chunks of masked tokens never run. Temporary memory: one chunk of logits.
* **recomputing** (16-bit inputs, whose weight gradient would need a float32 copy of
  the weight, and ``vocab_axis``): tiles of ``chunk_size`` tokens by ``VOCAB_BLOCK``
  entries; the backward recomputes each tile's logits (four products per tile).
  Temporary memory: a few tiles plus the float32 gradient of ``hidden``.

The polynomial itself comes from ``polyloss_core.series.loss_from_ce``, applied to
the ``(tokens,)`` vectors of statistics with ordinary JAX autodiff, so ``epsilon``
may be traced and ``where`` masks tokens exactly as in the unfused losses.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511; the chunked linear +
cross-entropy follows Wijmans et al., "Cut Your Losses in Large-Vocabulary Language
Models", arXiv:2411.09009, and Hsu et al., "Liger Kernel: Efficient Triton Kernels for
LLM Training", arXiv:2410.10989.
"""

from __future__ import annotations

import functools
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

#: Vocabulary entries per tile (the whole vocabulary when smaller). Not a power of two: blocks of
#: 1024 or 2048 columns of a row-major chunk map onto the same cache sets, which measured 10% slower.
VOCAB_BLOCK = 2000
#: Tokens per tile when ``chunk_size`` is ``None`` on the recomputing route (all tokens when fewer).
DEFAULT_CHUNK = 1024
#: Logits per chunk when ``chunk_size`` is ``None`` on the one-pass route: ``2**24`` (64 MiB in float32).
CHUNK_LOGITS = 1 << 24


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
    to float32 rounding, but the ``(tokens, vocab)`` logits are never stored. For
    float32 / float64 inputs they are computed once, ``chunk_size`` tokens at a time,
    and each chunk's gradients are formed right away (three matrix products, as for the
    unfused loss); temporary memory is one chunk of logits. The backward is exact for any
    cotangent; when the tokens' cotangents differ (a weighted sum rather than a mean or
    a sum) it recomputes logits to correct the weight's gradient, which costs about two
    more products per chunk. 16-bit inputs and ``vocab_axis`` take tiles of ``chunk_size``
    tokens by ``VOCAB_BLOCK`` vocabulary entries, recomputed in the backward (the module
    docstring has both routes).

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
        chunk_size: tokens per chunk, an int ``>= 1``. ``None`` (default): as many as
            keep a chunk's float32 logits within 64 MiB (``CHUNK_LOGITS`` numbers: 130
            tokens at 128,256 words), and ``min(tokens, 1024)`` on the recomputing route.
            Smaller chunks use less memory, larger ones run closer to matrix-multiply speed.
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
        chunk_size: tokens per chunk (int ``>= 1``); ``None`` (default) as in
            ``linear_poly1_cross_entropy_with_integer_labels``.
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
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None, int | None]:
    """The arrays as JAX arrays of checked dtypes and shapes, and the checked ``chunk_size``."""
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
    if chunk_size is not None:
        chunk_size = checks.check_int("chunk_size", chunk_size)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got chunk_size={chunk_size}")
    return h, w, y, mask, chunk_size


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
    h, w, y, mask, chunk = _check_inputs(hidden, weight, labels, where, chunk_size)
    if vocab_axis is not None and not isinstance(vocab_axis, str):
        raise TypeError(f"vocab_axis must be a shard_map mesh axis name (str) or None, got {vocab_axis!r}")
    # With vocab_axis, weight is this device's block of rows; the vocabulary is all blocks.
    shards = 1 if vocab_axis is None else lax.axis_size(vocab_axis)
    vocab = w.shape[0] * shards
    check_family(spec, "softmax", vocab)
    smoothing = bool(spec.label_smoothing)
    if smoothing and (spec.gamma != 0 or len(spec.epsilons) > 1 or isinstance(spec.alpha, tuple)):
        raise ValueError(
            f"the fused linear loss supports label_smoothing={spec.label_smoothing} only for cross-entropy and "
            f"Poly-1 without per-class alpha, got {spec!r}; compute the logits and use polyloss_jax.poly_loss instead"
        )
    _check_host_labels(labels, where, vocab)
    work = jnp.float32 if jnp.finfo(h.dtype).bits < 32 else h.dtype
    if y.dtype.itemsize < 4:
        y = y.astype(jnp.int32)
    if epsilon is not None:
        epsilon = jnp.asarray(epsilon, work)
    if not y.size:  # no tokens: nothing to tile (the loss is an empty array, as optax's)
        return jnp.zeros(y.shape, work)
    flat_h, flat_y = h.reshape(-1, h.shape[-1]), y.reshape(-1)
    keep = None if mask is None else mask.reshape(-1)
    tokens = flat_y.shape[0]
    block = min(VOCAB_BLOCK, w.shape[0])
    if vocab_axis is None and work == h.dtype:
        rows = min(chunk or max(1, CHUNK_LOGITS // vocab), tokens)
        compact = keep is not None  # masked tokens are moved last and never computed
        keep = jnp.ones(flat_y.shape, bool) if keep is None else keep
        traced = epsilon is not None
        eps = epsilon if traced else jnp.zeros((), work)
        head = _head_loss_in_shard_map if _in_shard_map() else _head_loss
        loss = head(spec, rows, block, traced, compact, *_same_varying_axes(flat_h, w, flat_y, keep, eps))
    else:
        stats = _vocab_stats(flat_h, w, flat_y, min(chunk or DEFAULT_CHUNK, tokens), smoothing, vocab_axis)
        loss = _per_token(stats, flat_y, keep, spec, epsilon, vocab)
    return loss.reshape(y.shape)


def _per_token(
    stats: tuple[jax.Array, ...], y: jax.Array, keep: jax.Array | None, spec: PolySpec, epsilon: Any, vocab: int
) -> jax.Array:
    """The loss of each token from its statistics ``(logsumexp, label logit[, sum of logits])`` (SPEC section 4).

    ``NaN`` for a label outside ``[0, vocab)``, ``0`` where ``keep`` is false.
    """
    lse, label_logit = stats[0], stats[1]
    ce = lse - label_logit
    loss = loss_from_ce(ce, -jnp.expm1(-ce), spec, OPS, epsilon=epsilon)
    if isinstance(spec.alpha, tuple):
        loss = loss * jnp.take(jnp.asarray(spec.alpha, lse.dtype), y, mode="clip")
    elif spec.alpha is not None:
        loss = loss * spec.alpha
    if spec.label_smoothing:
        hard, uniform = smoothing_weights(spec, vocab)
        eps = epsilon if epsilon is not None or spec.epsilons else 0.0
        class_sum = poly1_class_sum(vocab * lse - stats[2], spec, vocab, epsilon=eps)
        loss = hard * loss + uniform * (class_sum if spec.alpha is None else spec.alpha * class_sum)
    valid = (y >= 0) & (y < vocab)
    loss = jnp.where(valid, loss, jnp.full((), jnp.nan, loss.dtype))
    return loss if keep is None else jnp.where(keep, loss, jnp.zeros((), loss.dtype))


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


def _in_shard_map() -> bool:
    """Whether the code is being traced inside ``shard_map`` (the mesh's manual axes); ``False`` on a JAX too old to say."""
    abstract_mesh = getattr(jax.sharding, "get_abstract_mesh", None)
    return bool(abstract_mesh is not None and abstract_mesh().manual_axes)


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


# --------------------------------------------------------------------------- one pass: gradients formed in the forward
def _head_primal(
    spec: PolySpec,
    rows: int,
    block: int,
    traced: bool,
    compact: bool,
    h: jax.Array,
    w: jax.Array,
    y: jax.Array,
    keep: jax.Array,
    eps: jax.Array,
) -> jax.Array:
    """Per-token loss of ``h @ w.T`` (whole vocabulary, float32 / float64 inputs), chunk by chunk of ``rows`` tokens.

    ``traced``: ``eps`` replaces the spec's ``eps_1`` (a traced epsilon); otherwise it is unused.
    ``compact``: tokens with ``keep`` false are moved after the others and skipped (a mask was given).
    Without differentiation only the statistics are computed: one matrix product per chunk.
    """
    return _head_forward(spec, rows, block, traced, compact, (False, False), h, w, y, keep, eps)[0]


#: ``_head_primal`` with its gradients: only those of the inputs being differentiated are formed.
_head_loss = jax.custom_vjp(_head_primal, nondiff_argnums=(0, 1, 2, 3, 4))
#: The same inside ``shard_map``, where JAX does not support ``symbolic_zeros``: both gradients are formed.
_head_loss_in_shard_map = jax.custom_vjp(_head_primal, nondiff_argnums=(0, 1, 2, 3, 4))


def _head_forward(
    spec: PolySpec,
    rows: int,
    block: int,
    traced: bool,
    compact: bool,
    wanted: tuple[bool, bool],
    h: jax.Array,
    w: jax.Array,
    y: jax.Array,
    keep: jax.Array,
    eps: jax.Array,
) -> tuple[jax.Array, tuple[Any, ...]]:
    """The loss and, for a cotangent of 1 per token, the ``wanted`` gradients of ``h`` and ``w`` (Liger's order).

    Each chunk's logits ``z`` (``rows x vocab``) give the token statistics, the per-token loss
    and its partial derivatives ``a`` (``jax.vjp`` of ``_per_token`` on the chunk), then
    ``dz = a_lse p + a_label onehot + a_sum`` in the logits' memory, ``dh = dz @ w`` and, block
    by block of the vocabulary, ``dw += dz.T @ h``: three matrix products per chunk, where
    recomputing the logits in the backward takes four. The backward scales these by the
    cotangent (exact when it is the same for every token with a gradient: a mean or a sum)
    and recomputes only the share of tokens whose cotangent differs.
    """
    want_dh, want_dw = wanted
    partials = want_dh or want_dw or traced  # the per-token derivatives are needed
    n, vocab = h.shape[0], w.shape[0]
    smoothing = bool(spec.label_smoothing)
    order = inverse = None
    if compact:  # kept tokens first: the chunks past the last kept token are never run
        order = jnp.argsort(jnp.logical_not(keep), stable=True)
        inverse = jnp.argsort(order)
        h, y, keep = h[order], y[order], keep[order]
    hp, yp, kp = _pad_rows(h, rows), _pad_rows(y, rows, -1), _pad_rows(keep, rows, False)
    chunks = -(-jnp.sum(keep) // rows) if compact else hp.shape[0] // rows
    col_sum = jnp.sum(w, axis=0) if smoothing else None  # sum_c z_c = h . sum_c w_c
    columns = jnp.arange(vocab)
    sources = (hp, w, eps)

    def chunk(i: Any, carry: tuple[Any, ...]) -> tuple[Any, ...]:
        dw, dh, *per_token = carry
        lo = i * rows
        h_i, y_i, k_i = (lax.dynamic_slice_in_dim(a, lo, rows) for a in (hp, yp, kp))
        z = jnp.dot(h_i, w.T)
        top = z.max(axis=1)
        lse = top + jnp.log(jnp.exp(z - top[:, None]).sum(axis=1))
        # The label's logit as a row product, so that z has no reader left once dz is formed.
        rows_of_labels = jnp.take(w, y_i, axis=0, mode="clip")
        label_logit = jnp.where((y_i >= 0) & (y_i < vocab), jnp.sum(h_i * rows_of_labels, axis=1), 0)
        stats = (lse, label_logit) if col_sum is None else (lse, label_logit, h_i @ col_sum)

        def loss_of(stats: tuple[jax.Array, ...], e: jax.Array) -> jax.Array:
            return _per_token(stats, y_i, k_i, spec, e if traced else None, vocab)

        if not partials:
            values: tuple[jax.Array, ...] = (loss_of(stats, eps),)
        else:
            # Every input per token, so that the pullback of ones gives each token's own partials.
            loss, pullback = jax.vjp(loss_of, stats, jnp.broadcast_to(eps, lse.shape))
            a, a_eps = pullback(jnp.ones_like(loss))
            values = (loss, lse, *a, a_eps) if traced else (loss, lse, *a)
            if want_dh or want_dw:
                dz = _logit_slope(z, lse, a, y_i, columns)
                dw = _add_blocks(dw, dz, h_i, block) if want_dw else dw
                dh = lax.dynamic_update_slice_in_dim(dh, jnp.dot(dz, w), lo, 0) if want_dh else dh
        per_token = [lax.dynamic_update_slice_in_dim(t, v, lo, 0) for t, v in zip(per_token, values, strict=True)]
        return (dw, dh, *per_token)

    count = 4 + smoothing + traced if partials else 1
    init = (
        _zeros(w.shape, w.dtype, *sources) if want_dw else None,
        _zeros(hp.shape, h.dtype, *sources) if want_dh else None,
        *(_zeros(yp.shape, h.dtype, *sources) for _ in range(count)),
    )
    dw, dh, loss, *rest = _loop(chunks, chunk, init)
    loss = loss[:n] if inverse is None else loss[:n][inverse]
    if count == 1:
        return loss, ()
    lse, *a = rest
    a_eps = a.pop() if traced else None
    return loss, (hp, w, yp, dw, None if dh is None else dh[:n], lse, tuple(a), a_eps, order, inverse, chunks)


def _loop(count: Any, body: Any, init: Any) -> Any:
    """``lax.fori_loop(0, count, body, init)``; a device-side ``count`` runs a while loop, which reads
    nothing back (an eager ``fori_loop`` converts a concrete bound with ``int()``)."""
    if isinstance(count, int):
        return lax.fori_loop(0, count, body, init)
    return lax.while_loop(lambda c: c[0] < count, lambda c: (c[0] + 1, body(c[0], c[1])), (0, init))[1]


def _logit_slope(z: jax.Array, lse: jax.Array, a: Any, y: jax.Array, columns: jax.Array) -> jax.Array:
    """``dloss/dz = a_lse softmax(z) + a_label onehot(y) + a_sum`` for the partials ``a`` of the statistics."""
    dz = jnp.exp(z - lse[:, None]) * a[0][:, None]
    dz = dz + jnp.where(columns[None, :] == y[:, None], a[1][:, None], jnp.zeros((), z.dtype))
    return dz if len(a) == 2 else dz + a[2][:, None]


def _add_blocks(dw: jax.Array, dz: jax.Array, h_i: jax.Array, block: int) -> jax.Array:
    """``dw + dz.T @ h_i``, one vocabulary block at a time, in place: no ``(vocab, dim)`` temporary.

    Whole blocks in a loop, then the remainder as one smaller static block (no masking).
    """

    def add(start: Any, size: int, dw: jax.Array) -> jax.Array:
        dz_j = lax.dynamic_slice_in_dim(dz, start, size, axis=1)
        current = lax.dynamic_slice_in_dim(dw, start, size)
        return lax.dynamic_update_slice_in_dim(dw, current + jnp.dot(dz_j.T, h_i), start, 0)

    whole, rest = divmod(dw.shape[0], block)
    dw = lax.fori_loop(0, whole, lambda j, dw: add(j * block, block, dw), dw)
    return add(whole * block, rest, dw) if rest else dw


def _head_fwd(
    spec: PolySpec, rows: int, block: int, traced: bool, compact: bool, h: Any, w: Any, y: Any, keep: Any, eps: Any
) -> tuple[jax.Array, tuple[Any, ...]]:
    """``symbolic_zeros``: only the gradients of the inputs being differentiated are formed (a frozen head: no ``dw``)."""
    wanted = (h.perturbed, w.perturbed)
    args = (h.value, w.value, y.value, keep.value, eps.value)
    return _head_forward(spec, rows, block, traced, compact, wanted, *args)


def _head_fwd_both(
    spec: PolySpec, rows: int, block: int, traced: bool, compact: bool, h: Any, w: Any, y: Any, keep: Any, eps: Any
) -> tuple[jax.Array, tuple[Any, ...]]:
    return _head_forward(spec, rows, block, traced, compact, (True, True), h, w, y, keep, eps)


def _head_bwd(
    spec: PolySpec, rows: int, block: int, traced: bool, compact: bool, residuals: tuple[Any, ...], ct: Any
) -> tuple[Any, Any, None, None, Any]:
    if not residuals or isinstance(ct, jax.custom_derivatives.SymbolicZero):
        return None, None, None, None, None
    hp, w, yp, dw, dh, lse_p, a, a_eps, order, inverse, chunks = residuals
    n = ct.shape[0]
    if order is not None:  # the residuals are in the forward's order: kept tokens first
        ct = ct[order]
    if dh is not None:
        dh = dh * ct[:, None]  # each token's own gradient: exact for any cotangent
        dh = dh if inverse is None else dh[inverse]
    if dw is not None:
        # The weight's gradient sums over tokens: dw holds it for a cotangent of 1. Scaled by the
        # cotangent of the first token with a gradient, it is exact when every such token has that
        # cotangent; the difference of the others is added chunk by chunk (none runs for a mean or sum).
        support = functools.reduce(jnp.logical_or, [t[:n] != 0 for t in a])
        first = ct[jnp.argmax(support)]
        delta = _pad_rows(jnp.where(support, ct - first, jnp.zeros((), ct.dtype)), rows)
        scaled = tuple(delta * t for t in a)
        columns = jnp.arange(w.shape[0])

        def correct(i: Any, dw: jax.Array) -> jax.Array:
            # The forward's chunk step again, with the cotangents' differences as the partials.
            lo = i * rows
            h_i, y_i, lse_i = (lax.dynamic_slice_in_dim(x, lo, rows) for x in (hp, yp, lse_p))
            a_i = tuple(lax.dynamic_slice_in_dim(t, lo, rows) for t in scaled)
            return _add_blocks(dw, _logit_slope(jnp.dot(h_i, w.T), lse_i, a_i, y_i, columns), h_i, block)

        dw = _loop(jnp.where(jnp.any(delta != 0), chunks, 0), correct, dw * first)
    d_eps = jnp.sum(ct * a_eps[:n]).astype(ct.dtype) if traced else None
    return dh, dw, None, None, d_eps


_head_loss.defvjp(_head_fwd, _head_bwd, symbolic_zeros=True)
_head_loss_in_shard_map.defvjp(_head_fwd_both, _head_bwd)
