"""``epsilon`` of the Poly-1 functions may be a traced array, as in optax (vmap, schedules under jit, grad)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from polyloss_jax import poly1_cross_entropy, poly1_cross_entropy_with_integer_labels, poly1_sigmoid_focal_loss

RNG = np.random.default_rng(3)
LOGITS = jnp.asarray(RNG.normal(size=(6, 5)) * 3, jnp.float32)
LABELS = jnp.asarray([0, 1, 2, 3, 4, 0])
SOFT = jax.nn.softmax(jnp.asarray(RNG.normal(size=(6, 5)), jnp.float32))
CALLS = {
    "integer": (poly1_cross_entropy_with_integer_labels, LABELS),
    "probabilities": (poly1_cross_entropy, SOFT),
    "sigmoid": (poly1_sigmoid_focal_loss, SOFT),
}
EPSILONS = jnp.asarray([-1.0, 0.0, 0.5, 2.0, 7.5])


@pytest.mark.parametrize("name", list(CALLS))
def test_vmap_over_epsilons_equals_a_loop(name: str) -> None:
    loss, labels = CALLS[name]
    batched = jax.vmap(lambda e: loss(LOGITS, labels, epsilon=e))(EPSILONS)
    looped = np.stack([np.asarray(loss(LOGITS, labels, epsilon=float(e))) for e in EPSILONS])
    np.testing.assert_allclose(batched, looped, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(CALLS))
def test_jit_with_epsilon_as_an_argument_traces_once(name: str) -> None:
    loss, labels = CALLS[name]
    traces = []

    @jax.jit
    def step(z: jax.Array, e: jax.Array) -> jax.Array:
        traces.append(e)
        return loss(z, labels, epsilon=e).mean()

    values = [float(step(LOGITS, jnp.float32(e))) for e in (0.0, 1.0, 2.0)]
    assert len(traces) == 1
    assert values[0] < values[1] < values[2]  # every example has 1 - p_t > 0


def test_epsilon_schedule_inside_jit() -> None:
    schedule = optax.linear_schedule(init_value=2.0, end_value=-1.0, transition_steps=10)

    @jax.jit
    def loss_at(step: jax.Array) -> jax.Array:
        return poly1_cross_entropy_with_integer_labels(LOGITS, LABELS, epsilon=schedule(step)).mean()

    for step in (0, 4, 10):
        want = poly1_cross_entropy_with_integer_labels(LOGITS, LABELS, epsilon=float(schedule(step))).mean()
        np.testing.assert_allclose(loss_at(jnp.int32(step)), want, rtol=1e-6)


@pytest.mark.parametrize("name", list(CALLS))
def test_gradient_with_respect_to_epsilon_is_the_polynomial_term(name: str) -> None:
    """dL/d(epsilon) = sum_c q_c (1 - p_c) (sigmoid: (1 - p_t)^(1 + gamma)), the loss' slope in epsilon."""
    loss, labels = CALLS[name]
    slope = jax.grad(lambda e: loss(LOGITS, labels, epsilon=e).sum())(jnp.float32(1.0))
    secant = (loss(LOGITS, labels, epsilon=3.0).sum() - loss(LOGITS, labels, epsilon=1.0).sum()) / 2.0
    assert float(slope) > 0
    np.testing.assert_allclose(slope, secant, rtol=1e-5)  # the loss is linear in epsilon


def test_a_traced_epsilon_must_be_a_float_scalar() -> None:
    with pytest.raises(TypeError, match=r"traced epsilon must be a floating-point scalar, got float32\[3\]"):
        jax.jit(lambda e: poly1_cross_entropy(LOGITS, SOFT, epsilon=e))(EPSILONS[:3])
    with pytest.raises(TypeError, match=r"traced epsilon must be a floating-point scalar, got int32"):
        jax.jit(lambda e: poly1_cross_entropy(LOGITS, SOFT, epsilon=e))(jnp.int32(1))


def test_a_concrete_array_epsilon_is_still_checked() -> None:
    with pytest.raises(ValueError, match=r"epsilon must be a finite number >= -1, got epsilon=-2\.0"):
        poly1_cross_entropy_with_integer_labels(LOGITS, LABELS, epsilon=jnp.float32(-2.0))
