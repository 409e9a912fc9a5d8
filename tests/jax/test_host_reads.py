"""The host-copy rule: label values are read only where that costs no device transfer (docs/jax.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyloss_jax import (
    linear_poly1_cross_entropy_with_integer_labels,
    poly1_cross_entropy,
    poly1_cross_entropy_with_integer_labels,
    poly1_sigmoid_focal_loss,
)

LOGITS = jnp.asarray(np.random.default_rng(0).normal(size=(6, 5)), jnp.float32)
LABELS = jnp.asarray([0, 1, 2, 3, 4, 0])
PROBS = jax.nn.one_hot(LABELS, 5)
CALLS = {
    "integer": (poly1_cross_entropy_with_integer_labels, LABELS),
    "probabilities": (poly1_cross_entropy, PROBS),
    "sigmoid": (poly1_sigmoid_focal_loss, PROBS),
}


#: What reads a device array's values back to the host; the tests make each raise.
_HOST_READS = ("__array__", "__bool__", "__int__", "__float__", "__index__", "item", "tolist")


class _Accelerator:
    platform = "gpu"


def _read(self: jax.Array, *args: object, **kwargs: object) -> None:
    raise AssertionError("a device value was read back")


def _forbid_host_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of reading a JAX array's values raise: its conversions, and ``np.asarray`` /
    ``np.array`` (NumPy reads it through the buffer protocol, which no Python attribute controls)."""
    array_type = type(LOGITS)
    for method in _HOST_READS:
        monkeypatch.setattr(array_type, method, _read)
    for name in ("asarray", "array"):
        convert = getattr(np, name)

        def guarded(value: object, *args: object, _convert=convert, **kwargs: object) -> object:
            if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
                raise AssertionError("a device array was converted to NumPy")
            return _convert(value, *args, **kwargs)

        monkeypatch.setattr(np, name, guarded)


@pytest.mark.parametrize("name", list(CALLS))
def test_jitted_value_and_grad_makes_no_transfer(name: str) -> None:
    loss, labels = CALLS[name]
    step = jax.jit(jax.value_and_grad(lambda z, y, e: loss(z, y, epsilon=e).mean(), argnums=(0, 2)))
    epsilon = jnp.float32(2.0)
    with jax.transfer_guard("disallow"):
        jax.block_until_ready(step(LOGITS, labels, epsilon))


@pytest.mark.parametrize("name", list(CALLS))
def test_eager_calls_on_device_arrays_copy_nothing_to_the_host(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an accelerator (simulated: the arrays report a GPU device) an eager call reads no value back."""
    loss, labels = CALLS[name]
    monkeypatch.setattr(type(LOGITS), "devices", lambda self: {_Accelerator()})
    _forbid_host_reads(monkeypatch)
    out = loss(LOGITS, labels, epsilon=2.0)
    monkeypatch.undo()
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("weighted", [False, True], ids=["mean", "per-token-weights"])
@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_the_fused_head_reads_nothing_back(weighted: bool, jit: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forming the gradients in the forward and deciding in the backward whether to recompute (the
    tokens' cotangents differ) happen on the device: no value is read back, jitted or eager. The
    labels are NumPy (host) arrays, read for the range check without touching a device array."""
    hidden, weight = LOGITS[:, :4], jnp.asarray(np.random.default_rng(1).normal(size=(7, 4)), jnp.float32)
    scale = jnp.linspace(0.5, 1.5, 6) if weighted else jnp.ones(6)
    labels, epsilon = np.asarray(LABELS), jnp.float32(2.0)
    keep = np.array([True, False, True, True, False, True])  # a mask: kept tokens are moved first on the device

    def loss(h: jax.Array, w: jax.Array, e: jax.Array) -> jax.Array:
        per_token = linear_poly1_cross_entropy_with_integer_labels(h, w, labels, epsilon=e, where=keep, chunk_size=2)
        return (per_token * scale).mean()

    step = jax.value_and_grad(loss, argnums=(0, 1, 2))
    if jit:
        step = jax.jit(step)
        jax.block_until_ready(step(hidden, weight, epsilon))  # compile outside the guard

    _forbid_host_reads(monkeypatch)
    out = step(hidden, weight, epsilon)
    monkeypatch.undo()
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(out))


def test_labels_on_an_accelerator_are_never_read_and_bad_ones_give_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager calls read no accelerator array: an out-of-range label is NaN, as under jit (SPEC section 6)."""
    bad_index, bad_target = LABELS.at[2].set(7), PROBS.at[1, 3].set(1.5)

    def no_read(self: jax.Array, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("labels were copied to the host")

    array_type = type(bad_index)
    monkeypatch.setattr(array_type, "devices", lambda self: {_Accelerator()})
    monkeypatch.setattr(array_type, "__array__", no_read)
    by_index = poly1_cross_entropy_with_integer_labels(LOGITS, bad_index)
    by_target = poly1_sigmoid_focal_loss(LOGITS, bad_target)
    monkeypatch.undo()
    by_index, by_target = np.asarray(by_index), np.asarray(by_target)
    assert np.isnan(by_index[2])
    assert np.isfinite(np.delete(by_index, 2)).all()
    assert np.isnan(by_target[1, 3])
    assert np.isfinite(by_target).sum() == by_target.size - 1


def test_host_and_cpu_labels_are_still_checked_eagerly() -> None:
    """NumPy labels and JAX arrays on the CPU cost no transfer to read, so they keep the clear error."""
    for labels in (np.asarray(LABELS.at[2].set(7)), LABELS.at[2].set(7)):
        with pytest.raises(ValueError, match="class index 7"):
            poly1_cross_entropy_with_integer_labels(LOGITS, labels)
