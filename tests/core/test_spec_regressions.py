"""PolySpec rejects what it used to accept silently or fail on obscurely; each test names what it protects."""

from __future__ import annotations

import tracemalloc
import warnings

import pytest

from polyloss_core import PolySpec


def test_huge_opposite_epsilons_are_rejected_without_overflow_warnings() -> None:
    """The monotonicity check must not overflow to NaN (and so pass) for epsilons near the float limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="increases"):
            PolySpec(epsilons=(0.0, 1e308, -1e308))
        with pytest.raises(ValueError, match="increases"):
            PolySpec(epsilons=(1e308, -1e308))
        # A huge positive coefficient is a valid (steep) loss and stays accepted, silently.
        assert PolySpec(epsilons=(0.0, 1e308)).epsilons == (0.0, 1e308)


@pytest.mark.parametrize("value", [None, 1.0, "1.0"])
def test_from_dict_names_the_epsilons_field(value) -> None:
    with pytest.raises(TypeError, match="epsilons") as info:
        PolySpec.from_dict({"epsilons": value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("alpha", [[[1, 2], [3, 4]], [[0.5]], [[]]])
def test_alpha_must_be_a_scalar_or_a_vector(alpha) -> None:
    """A matrix of weights was flattened silently into one weight per entry."""
    with pytest.raises(ValueError, match="alpha"):
        PolySpec(alpha=alpha)


@pytest.mark.parametrize("epsilons", [{1.0, 0.5}, frozenset({1.0, 0.5}), {1.0: 0, 0.5: 1}])
def test_epsilons_must_be_an_ordered_sequence(epsilons) -> None:
    """A set has no order: eps_1 and eps_2 could swap."""
    with pytest.raises(TypeError, match="epsilons"):
        PolySpec(epsilons=epsilons)


def test_validation_memory_does_not_grow_with_the_number_of_terms() -> None:
    """drop(10_000) used to need ~4 GB (~0.4 MB per term) in the monotonicity check."""
    PolySpec.drop(3)  # import and warm-up outside the measurement
    tracemalloc.start()
    try:
        spec = PolySpec.drop(10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(spec.epsilons) == 10_000
    assert peak < 8 * 2**20, f"validation peaked at {peak / 2**20:.1f} MiB"
