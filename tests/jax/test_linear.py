"""The fused linear head + PolyLoss (``polyloss_jax.linear``): the unfused loss's numbers without its logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import polyloss_jax.linear as linear
from polyloss_core import PolySpec
from polyloss_jax import (
    linear_poly1_cross_entropy_with_integer_labels,
    linear_poly_loss,
    poly1_cross_entropy_with_integer_labels,
    poly_loss,
)

TOL = {"rtol": 2e-5, "atol": 2e-5}


def _inputs(n: int = 37, d: int = 8, v: int = 50, seed: int = 0, masked: float = 0.0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(n, d)).astype(np.float32)
    weight = rng.normal(size=(v, d)).astype(np.float32)
    labels = rng.integers(0, v, size=n).astype(np.int32)
    keep = rng.random(n) >= masked
    return jnp.asarray(hidden), jnp.asarray(weight), jnp.asarray(labels), jnp.asarray(keep)


def _assert_same_value_and_grads(fused, unfused, hidden, weight, seed: int = 1, tol=TOL):
    """Values equal, and the VJP of a random (non-uniform) cotangent w.r.t. hidden and weight equals."""
    got, got_vjp = jax.vjp(fused, hidden, weight)
    want, want_vjp = jax.vjp(unfused, hidden, weight)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **tol)
    cotangent = jnp.asarray(np.random.default_rng(seed).normal(size=got.shape), got.dtype)
    for g, w, name in zip(got_vjp(cotangent), want_vjp(cotangent), ("hidden", "weight"), strict=True):
        assert g.dtype == w.dtype, name
        np.testing.assert_allclose(g, w, err_msg=name, **tol)


# --------------------------------------------------------------------------- values and gradients
@pytest.mark.parametrize(
    ("chunk_size", "block"),
    [(None, None), (5, 16), (7, 50), (1, 7), (64, 3)],
    ids=["default", "ragged-rows-and-vocab", "one-vocab-tile", "row-by-row", "chunk-above-tokens"],
)
def test_poly1_matches_unfused_for_every_tiling(chunk_size, block, monkeypatch) -> None:
    if block is not None:
        monkeypatch.setattr(linear, "VOCAB_BLOCK", block)
    hidden, weight, labels, keep = _inputs(masked=0.2)

    def fused(h, w):
        return linear_poly1_cross_entropy_with_integer_labels(
            h, w, labels, epsilon=2.0, where=keep, chunk_size=chunk_size
        )

    def unfused(h, w):
        return poly1_cross_entropy_with_integer_labels(h @ w.T, labels, epsilon=2.0, where=keep)

    _assert_same_value_and_grads(fused, unfused, hidden, weight)
    _assert_same_value_and_grads(jax.jit(fused), jax.jit(unfused), hidden, weight)


@pytest.mark.parametrize(
    "spec",
    [
        PolySpec.cross_entropy(),
        PolySpec.poly_n(1.0, 0.5, -0.2),
        PolySpec.drop(2),
        PolySpec.focal(2.0),
        PolySpec.poly1_focal(1.0, 0.5),
        PolySpec(epsilons=(2.0,), alpha=0.25),
        PolySpec(epsilons=(1.0,), alpha=tuple(np.linspace(0.5, 1.5, 50).tolist())),
        PolySpec.poly1(1.5, label_smoothing=0.1),
        PolySpec(label_smoothing=0.2),
        PolySpec(epsilons=(-1.0,), alpha=2.0, label_smoothing=0.05),
    ],
    ids=["ce", "poly3", "drop2", "focal", "poly1-focal-0.5", "alpha", "class-weights", "smooth", "ce-smooth", "all"],
)
def test_linear_poly_loss_matches_unfused_poly_loss(spec, monkeypatch) -> None:
    monkeypatch.setattr(linear, "VOCAB_BLOCK", 16)
    hidden, weight, labels, keep = _inputs(masked=0.2, seed=3)
    _assert_same_value_and_grads(
        lambda h, w: linear_poly_loss(h, w, labels, spec, where=keep, chunk_size=6),
        lambda h, w: poly_loss(h @ w.T, labels, spec, where=keep),
        hidden,
        weight,
    )


@pytest.mark.parametrize(
    "reduce",
    [
        lambda loss, keep: loss.sum() / keep.sum(),  # optax-style masked mean
        lambda loss, keep: loss.sum(),  # sum (transformers' sum / num_items_in_batch)
        lambda loss, keep: (loss * jnp.where(keep, 0.25, 3.0)).sum(),  # other weights only where masked
        lambda loss, keep: (loss * jnp.linspace(0.5, 1.5, loss.shape[0])).sum(),  # a weight per token
    ],
    ids=["mean", "sum", "same-on-kept-tokens", "per-token-weights"],
)
@pytest.mark.parametrize("argnums", [(0, 1), (0,), (1,)], ids=["both", "hidden-only", "weight-only"])
def test_gradients_for_every_kind_of_cotangent(reduce, argnums) -> None:
    """The one-pass route scales gradients formed in the forward: exact when the cotangent is the same
    for every token with a gradient, corrected by recomputation otherwise; inputs not differentiated
    (a frozen head) get no gradient formed."""
    hidden, weight, labels, keep = _inputs(masked=0.2, seed=7)

    def fused(h, w):
        return reduce(linear_poly1_cross_entropy_with_integer_labels(h, w, labels, where=keep, chunk_size=6), keep)

    def unfused(h, w):
        return reduce(poly1_cross_entropy_with_integer_labels(h @ w.T, labels, where=keep), keep)

    got = jax.jit(jax.value_and_grad(fused, argnums))(hidden, weight)
    want = jax.jit(jax.value_and_grad(unfused, argnums))(hidden, weight)
    np.testing.assert_allclose(got[0], want[0], **TOL)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, **TOL)


def test_batch_dimensions_are_kept_and_match_unfused() -> None:
    hidden, weight, labels, keep = _inputs(n=24)
    h, y, m = hidden.reshape(2, 3, 4, 8), labels.reshape(2, 3, 4), keep.reshape(2, 3, 4).at[0, 0, 0].set(False)
    got = linear_poly1_cross_entropy_with_integer_labels(h, weight, y, where=m, chunk_size=5)
    assert got.shape == (2, 3, 4)
    np.testing.assert_allclose(got, poly1_cross_entropy_with_integer_labels(h @ weight.T, y, where=m), **TOL)
    assert float(got[0, 0, 0]) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["one-pass", "recomputing"])
def test_no_tokens_give_an_empty_loss_and_zero_gradients(dtype) -> None:
    hidden, weight, labels = jnp.zeros((2, 0, 8), dtype), jnp.ones((50, 8), dtype), jnp.zeros((2, 0), jnp.int32)
    got = linear_poly1_cross_entropy_with_integer_labels(hidden, weight, labels)
    assert got.shape == (2, 0)
    assert got.dtype == jnp.float32
    dh, dw = jax.jit(jax.grad(lambda h, w: linear_poly1_cross_entropy_with_integer_labels(h, w, labels).sum(), (0, 1)))(
        hidden, weight
    )
    assert dh.shape == hidden.shape
    assert dw.dtype == dtype
    assert not np.asarray(dw, np.float32).any()


@pytest.mark.parametrize("kept", [0, 1, 3, 37], ids=["none-kept", "one-kept", "three-kept", "all-kept"])
def test_masked_tokens_are_skipped_not_approximated(kept) -> None:
    """With a mask the kept tokens are moved first and only their chunks run: exact for any number kept."""
    hidden, weight, labels, _ = _inputs(seed=11)
    keep = jnp.zeros(37, bool).at[jnp.asarray(np.random.default_rng(2).permutation(37)[:kept])].set(True)

    def fused(h, w):
        return linear_poly1_cross_entropy_with_integer_labels(h, w, labels, where=keep, chunk_size=2)

    def unfused(h, w):
        return poly1_cross_entropy_with_integer_labels(h @ w.T, labels, where=keep)

    _assert_same_value_and_grads(fused, unfused, hidden, weight)
    mean = jax.jit(jax.grad(lambda h, w: fused(h, w).sum() / jnp.maximum(keep.sum(), 1), (0, 1)))(hidden, weight)
    want = jax.grad(lambda h, w: unfused(h, w).sum() / jnp.maximum(keep.sum(), 1), (0, 1))(hidden, weight)
    for g, w in zip(mean, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)


def test_masked_tokens_give_zero_loss_and_no_gradient() -> None:
    hidden, weight, labels, _ = _inputs(n=6)
    keep = jnp.array([True, False, True, False, True, True])
    grads = jax.grad(
        lambda h: linear_poly1_cross_entropy_with_integer_labels(h, weight, labels, where=keep, chunk_size=4).sum()
    )(hidden)
    loss = linear_poly1_cross_entropy_with_integer_labels(hidden, weight, labels, where=keep)
    assert np.all(np.asarray(loss)[~np.asarray(keep)] == 0.0)
    assert np.all(np.asarray(grads)[~np.asarray(keep)] == 0.0)
    assert np.all(np.abs(np.asarray(grads)[np.asarray(keep)]).sum(axis=1) > 0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_16bit_inputs_accumulate_in_float32(dtype, monkeypatch) -> None:
    monkeypatch.setattr(linear, "VOCAB_BLOCK", 16)
    hidden, weight, labels, keep = _inputs(masked=0.2, seed=5)
    h16, w16 = hidden.astype(dtype), (weight / 3).astype(dtype)
    # Products of 16-bit numbers are exact in float32, so the float32 computation on the
    # up-cast inputs is what float32 accumulation must reproduce (to float32 rounding).
    got = linear_poly1_cross_entropy_with_integer_labels(h16, w16, labels, where=keep, chunk_size=8)
    assert got.dtype == jnp.float32
    h32, w32 = h16.astype(jnp.float32), w16.astype(jnp.float32)
    want = poly1_cross_entropy_with_integer_labels(h32 @ w32.T, labels, where=keep)
    np.testing.assert_allclose(got, want, **TOL)
    grads = jax.grad(
        lambda h, w: linear_poly1_cross_entropy_with_integer_labels(h, w, labels, where=keep, chunk_size=8).sum(),
        (0, 1),
    )(h16, w16)
    want_grads = jax.grad(
        lambda h, w: poly1_cross_entropy_with_integer_labels(h @ w.T, labels, where=keep).sum(), (0, 1)
    )(h32, w32)
    for g, w in zip(grads, want_grads, strict=True):
        assert g.dtype == dtype
        # The only rounding left is the final cast of the float32 gradient to 16 bits.
        np.testing.assert_allclose(g.astype(jnp.float32), w.astype(dtype).astype(jnp.float32), rtol=0, atol=0)


# --------------------------------------------------------------------------- transformations
def test_traced_epsilon_under_jit_vmap_and_grad() -> None:
    hidden, weight, labels, keep = _inputs(masked=0.2)
    epsilons = jnp.array([-1.0, 0.0, 0.5, 2.0])

    @jax.jit
    def per_epsilon(eps):
        return linear_poly1_cross_entropy_with_integer_labels(hidden, weight, labels, epsilon=eps, where=keep).sum()

    got = jax.vmap(per_epsilon)(epsilons)
    logits = hidden @ weight.T
    want = [
        poly1_cross_entropy_with_integer_labels(logits, labels, epsilon=float(e), where=keep).sum() for e in epsilons
    ]
    np.testing.assert_allclose(got, want, **TOL)
    # d loss / d epsilon = sum over kept tokens of 1 - p_t.
    p_t = jnp.take_along_axis(jax.nn.softmax(logits), labels[:, None], axis=1)[:, 0]
    np.testing.assert_allclose(jax.grad(per_epsilon)(jnp.float32(0.7)), jnp.where(keep, 1 - p_t, 0).sum(), **TOL)


def test_vmap_over_sequences_with_a_shared_weight() -> None:
    hidden, weight, labels, _ = _inputs(n=30)
    h, y = hidden.reshape(3, 10, 8), labels.reshape(3, 10)

    def fused(h, w):
        return jax.vmap(
            lambda hh, yy: linear_poly1_cross_entropy_with_integer_labels(hh, w, yy, chunk_size=4), in_axes=(0, 0)
        )(h, y)

    _assert_same_value_and_grads(fused, lambda h, w: poly1_cross_entropy_with_integer_labels(h @ w.T, y), h, weight)


# --------------------------------------------------------------------------- out-of-range labels (SPEC section 6)
def test_out_of_range_label_under_jit_is_nan_with_zero_gradient() -> None:
    hidden, weight, _, _ = _inputs(n=4, v=5)
    labels = jnp.array([0, 5, -1, 4])  # traced below: never read, so the bad tokens give NaN

    @jax.jit
    def loss_and_grad(h, w, y):
        return jax.value_and_grad(
            lambda h, w: linear_poly1_cross_entropy_with_integer_labels(h, w, y, chunk_size=3)[jnp.array([0, 3])].sum(),
            (0, 1),
        )(h, w)

    per_token = jax.jit(linear_poly1_cross_entropy_with_integer_labels)(hidden, weight, labels)
    assert np.isnan(np.asarray(per_token)).tolist() == [False, True, True, False]
    _, (dh, dw) = loss_and_grad(hidden, weight, labels)
    assert np.all(np.asarray(dh)[1:3] == 0.0)
    assert np.isfinite(np.asarray(dw)).all()


def test_out_of_range_host_labels_raise_eagerly_unless_masked() -> None:
    hidden, weight, _, _ = _inputs(n=3, v=5)
    with pytest.raises(ValueError, match=r"labels contains class index 7, outside the valid range \[0, 5\)"):
        linear_poly1_cross_entropy_with_integer_labels(hidden, weight, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="class index -100"):
        linear_poly_loss(hidden, weight, [0, -100, 1], PolySpec.cross_entropy())
    # Padding labelled -100 and masked out is not an error.
    loss = linear_poly1_cross_entropy_with_integer_labels(
        hidden, weight, np.array([0, -100, 1]), where=np.array([True, False, True])
    )
    assert np.isfinite(np.asarray(loss)).all()
    assert float(loss[1]) == 0.0


def test_cpu_device_labels_are_checked_without_a_transfer() -> None:
    """The adapter's host-copy rule: JAX arrays on CPU are read in place (no transfer) and raise eagerly."""
    hidden, weight, _, _ = _inputs(n=3, v=5)
    labels = jnp.array([0, 7, 1])
    with (
        jax.transfer_guard_device_to_host("disallow"),
        pytest.raises(ValueError, match=r"labels contains class index 7"),
    ):
        linear_poly1_cross_entropy_with_integer_labels(hidden, weight, labels)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"weight": np.zeros((5, 7), np.float32)}, ValueError, r"hidden must have shape \('...', 7\).*got \(3, 4\)"),
        ({"weight": np.zeros((5,), np.float32)}, ValueError, r"weight must have shape \(vocab, dim\).*got \(5,\)"),
        ({"weight": np.zeros((5, 4), jnp.bfloat16)}, TypeError, "same dtype, got hidden float32 and weight bfloat16"),
        ({"hidden": np.zeros((3, 4), np.int32)}, TypeError, "hidden must have a floating-point dtype, got int32"),
        ({"labels": np.array([0.0, 1.0, 2.0])}, TypeError, "labels must be integer class indices, got dtype float"),
        ({"labels": np.array([0, 1])}, ValueError, r"labels must have shape \(3,\).*got \(2,\)"),
        ({"where": np.array([1, 0, 1])}, TypeError, "where must be a boolean array, got dtype int"),
        ({"where": np.array([True, False])}, ValueError, r"where must have shape \(3,\).*got \(2,\)"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be an int >= 1, got chunk_size=0"),
        ({"chunk_size": -4}, ValueError, "chunk_size must be an int >= 1, got chunk_size=-4"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size must be an int, got 2.5"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an int, got True"),
        ({"epsilon": -1.5}, ValueError, "epsilon must be a finite number >= -1, got epsilon=-1.5"),
        ({"epsilon": "2"}, TypeError, "epsilon must be a real number, got '2'"),
        ({"epsilon": jnp.ones(2)}, ValueError, r"epsilon must be a scalar, got an array of shape \(2,\)"),
        ({"vocab_axis": 3}, TypeError, "vocab_axis must be a shard_map mesh axis name .str. or None, got 3"),
    ],
)
def test_bad_input_names_the_argument_and_value(change, error, match) -> None:
    args = {
        "hidden": np.zeros((3, 4), np.float32),
        "weight": np.zeros((5, 4), np.float32),
        "labels": np.array([0, 1, 2]),
    }
    args.update(change)
    kwargs = {k: args.pop(k) for k in ("where", "chunk_size", "epsilon", "vocab_axis") if k in args}
    with pytest.raises(error, match=match):
        linear_poly1_cross_entropy_with_integer_labels(args["hidden"], args["weight"], args["labels"], **kwargs)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("poly1", TypeError, "spec must be a polyloss_core.PolySpec, got str"),
        (
            PolySpec(epsilons=(1.0,), alpha=(1.0, 2.0)),
            ValueError,
            "alpha has 2 per-class weights but the input has 5 classes",
        ),
        (PolySpec(epsilons=(1.0,), gamma=2.0, label_smoothing=0.1), ValueError, "label_smoothing=0.1 only for"),
        (PolySpec.poly_n(1.0, 1.0, label_smoothing=0.1), ValueError, "use polyloss_jax.poly_loss"),
    ],
)
def test_unsupported_specs_are_rejected_clearly(spec, error, match) -> None:
    with pytest.raises(error, match=match):
        linear_poly_loss(np.zeros((3, 4), np.float32), np.zeros((5, 4), np.float32), np.array([0, 1, 2]), spec)


# --------------------------------------------------------------------------- memory
@pytest.mark.parametrize("argnums", [(0, 1), (0,)], ids=["hidden-and-weight", "frozen-weight"])
def test_compiled_temp_memory_is_at_most_an_eighth_of_unfused_optax(argnums) -> None:
    n, d, v = 512, 64, 32768
    args = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((v, d), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )

    def fused(h, w, y):
        # One chunk of 64 tokens by the whole vocabulary: 8 MiB of logits, a sixteenth of the unfused pair.
        return linear_poly1_cross_entropy_with_integer_labels(h, w, y, chunk_size=64).mean()

    def unfused(h, w, y):
        return optax.losses.softmax_cross_entropy_with_integer_labels(h @ w.T, y).mean()

    def temp(fn):
        program = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*args).compile()
        return program.memory_analysis().temp_size_in_bytes

    fused_bytes, unfused_bytes = temp(fused), temp(unfused)
    # The unfused program holds at least the (n, v) float32 logits.
    assert unfused_bytes >= n * v * 4
    assert fused_bytes * 8 <= unfused_bytes, (fused_bytes, unfused_bytes)


# --------------------------------------------------------------------------- training
def test_flax_nnx_language_model_head_trains_with_the_fused_loss() -> None:
    nnx = pytest.importorskip("flax.nnx")
    vocab, dim = 64, 16

    class TinyLM(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(vocab, dim, rngs=rngs)
            self.mix = nnx.Linear(dim, dim, rngs=rngs)
            self.head = nnx.Linear(dim, vocab, use_bias=False, rngs=rngs)

        def __call__(self, tokens):
            return jnp.tanh(self.mix(self.embed(tokens)))

    model = TinyLM(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, vocab, size=(8, 12)))
    # Next token = (token * 5 + 3) mod vocab: learnable from the current token alone.
    targets = (tokens * 5 + 3) % vocab
    keep = jnp.asarray(rng.random((8, 12)) > 0.1)

    def loss_fn(model):
        hidden = model(tokens)
        # nnx.Linear keeps its kernel as (in, out) = (dim, vocab); the loss wants (vocab, dim).
        per_token = linear_poly1_cross_entropy_with_integer_labels(
            hidden, model.head.kernel[...].T, targets, epsilon=1.0, where=keep, chunk_size=32
        )
        return per_token.sum() / keep.sum()

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(30)]
    assert losses[-1] < 0.3 * losses[0], losses
    assert all(np.isfinite(losses))


def test_inside_shard_map_eagerly_and_under_grad() -> None:
    """JAX has no ``symbolic_zeros`` for a custom VJP inside ``shard_map``: the head forms both gradients there."""
    from jax import shard_map
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    hidden, weight, labels, keep = _inputs(n=8, masked=0.25)
    mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))

    def fused(h, w):
        return shard_map(
            lambda h, w, y, m: linear_poly1_cross_entropy_with_integer_labels(h, w, y, where=m, chunk_size=3),
            mesh=mesh,
            in_specs=(P("data"), P(), P("data"), P("data")),
            out_specs=P("data"),
        )(h, w, labels, keep)

    def unfused(h, w):
        return poly1_cross_entropy_with_integer_labels(h @ w.T, labels, where=keep)

    np.testing.assert_allclose(fused(hidden, weight), unfused(hidden, weight), **TOL)  # no differentiation
    _assert_same_value_and_grads(fused, unfused, hidden, weight)
