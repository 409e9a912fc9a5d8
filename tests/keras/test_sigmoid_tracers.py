"""The sigmoid family's closed-form gradient route, eagerly and inside every compiler of the backend.

Logits with an integer ``gamma`` and one epsilon take ``_impl.sigmoid_logits``:
the loss with its slope from ``polyloss_core.series.sigmoid_slope``, recomputed in
the backward under XLA and eagerly, kept from one XLA-compiled function in a
TensorFlow graph. The parity matrix checks the numbers eagerly; these cases check
that every tracer gives the same ones, with the NaN marking of targets outside
``[0, 1]`` that only traced calls need (eager calls check the targets on the host).
"""

from __future__ import annotations

import numpy as np
import pytest

import polyloss_tf as pl
from polyloss_core import PolySpec, reference

from .helpers import ATOL, RTOL, TRACERS, logits, value_and_grad

SHAPE = (4, 5, 3)
LOSSES = {
    "poly1-bce": (
        lambda: pl.Poly1BinaryCrossentropy(epsilon=2.0, from_logits=True, reduction=None),
        PolySpec.poly1(2.0),
    ),
    "poly1-focal-balanced": (
        lambda: pl.Poly1BinaryFocalCrossentropy(
            epsilon=-0.5, gamma=2.0, alpha=0.25, apply_class_balancing=True, from_logits=True, reduction=None
        ),
        PolySpec.poly1_focal(-0.5, 2.0, 0.25),
    ),
    "poly1-focal-gamma3-smoothed": (
        lambda: pl.Poly1BinaryFocalCrossentropy(
            epsilon=1.0, gamma=3.0, label_smoothing=0.1, from_logits=True, reduction=None
        ),
        PolySpec.poly1_focal(1.0, 3.0, label_smoothing=0.1),
    ),
}


def _targets(kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    hard = (rng.random(SHAPE) < 0.3).astype(np.float32)
    return hard if kind == "hard" else rng.random(SHAPE).astype(np.float32)


@pytest.mark.parametrize("tracer", list(TRACERS))
@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_values_and_gradients_match_reference(tracer: str, kind: str, name: str) -> None:
    make_loss, spec = LOSSES[name]
    z, t = logits(SHAPE, 3, scale=4.0), _targets(kind)
    z[0, 0] = [40.0, -40.0, 1e4]  # confident and extreme logits: 1 - p_t without cancellation
    value, grad = value_and_grad(make_loss(), t, z, tracer)
    classes = SHAPE[-1]
    np.testing.assert_allclose(value, reference.sigmoid_poly_loss(z, t, spec).mean(-1), rtol=RTOL, atol=ATOL)
    want = reference.sigmoid_poly_loss_grad(z, t, spec) / classes
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("tracer", list(TRACERS))
def test_targets_outside_the_unit_interval_raise_eagerly_and_give_nan_rows_traced(tracer: str) -> None:
    """SPEC section 6: an eager call reads the targets and raises; a traced one cannot, and marks the rows NaN."""
    make_loss, spec = LOSSES["poly1-focal-balanced"]
    z, t = logits(SHAPE, 4), _targets("soft")
    t[1, 2, 0], t[3, 0, 2] = 1.5, -0.25
    if TRACERS[tracer] is None:
        with pytest.raises(ValueError, match=r"y_true values must lie in \[0, 1\], got values in \[-0\.25, 1\.5\]"):
            value_and_grad(make_loss(), t, z, tracer)
        return
    value, _ = value_and_grad(make_loss(), t, z, tracer)
    bad = np.zeros(SHAPE[:-1], bool)
    bad[1, 2] = bad[3, 0] = True
    assert np.isnan(value[bad]).all()
    want = reference.sigmoid_poly_loss(z, np.clip(t, 0, 1), spec).mean(-1)
    np.testing.assert_allclose(value[~bad], want[~bad], rtol=RTOL, atol=ATOL)
