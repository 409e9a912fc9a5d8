"""PolySpec: constructors, coefficients, validation and the JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from polyloss_core import PolySpec, check_family, poly1_spec


def test_named_members_have_the_papers_coefficients() -> None:
    np.testing.assert_allclose(PolySpec.cross_entropy().coefficients(4), [1, 1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose(PolySpec.poly1(2.0).coefficients(3), [3, 1 / 2, 1 / 3])
    np.testing.assert_allclose(PolySpec.poly_n(1.0, -0.25).coefficients(3), [2, 1 / 4, 1 / 3])
    np.testing.assert_allclose(PolySpec.drop(2).coefficients(4), [0, 0, 1 / 3, 1 / 4], atol=0)
    focal = PolySpec.focal(2.0, 0.25)
    assert (focal.epsilons, focal.gamma, focal.alpha) == ((), 2.0, 0.25)
    pf = PolySpec.poly1_focal(-1.0, 1.5)
    assert (pf.epsilons, pf.gamma, pf.alpha) == ((-1.0,), 1.5, None)


def test_defaults_follow_the_paper() -> None:
    assert PolySpec.poly1().epsilons == (1.0,)
    assert PolySpec.poly1_focal().epsilons == (1.0,)
    assert PolySpec.poly1_focal().gamma == 2.0
    assert PolySpec.focal().gamma == 2.0


def test_coefficients_beyond_the_epsilons_are_ce() -> None:
    assert PolySpec.poly_n(1, 2, 3).coefficients(0).shape == (0,)
    np.testing.assert_allclose(PolySpec.poly_n(1, 2, 3).coefficients(2), [2, 2.5])
    assert PolySpec.poly1().coefficients(5).dtype == np.float64


def test_poly_n_accepts_a_sequence() -> None:
    assert PolySpec.poly_n([0.5, 0.25]) == PolySpec.poly_n(0.5, 0.25)


@pytest.mark.parametrize(
    "spec",
    [
        PolySpec.cross_entropy(),
        PolySpec.poly1(2.0, label_smoothing=0.1),
        PolySpec.drop(3),
        PolySpec.focal(2.0, 0.25),
        PolySpec(epsilons=(1.0, -0.2), gamma=0.5, alpha=(0.5, 1.0, 2.0)),
        PolySpec(epsilons=(0.0, -3.0), allow_increasing=True),
    ],
)
def test_dict_round_trip_is_json_safe(spec: PolySpec) -> None:
    text = json.dumps(spec.to_dict())
    assert PolySpec.from_dict(json.loads(text)) == spec


def test_fields_are_normalised_to_floats_and_tuples() -> None:
    spec = PolySpec(epsilons=[1, 2], gamma=1, alpha=np.array([1, 2]))
    assert spec.epsilons == (1.0, 2.0)
    assert isinstance(spec.gamma, float)
    assert spec.alpha == (1.0, 2.0)
    assert hash(spec) == hash(PolySpec(epsilons=(1.0, 2.0), gamma=1.0, alpha=(1.0, 2.0)))


def test_spec_is_frozen() -> None:
    spec = PolySpec.poly1()
    with pytest.raises(AttributeError):
        spec.gamma = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epsilons": (-1.5,)}, r"epsilons\[0\].*>= -1.*-1\.5"),
        ({"gamma": -0.5}, r"gamma must be >= 0, got gamma=-0\.5"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\), got label_smoothing=1\.0"),
        ({"label_smoothing": -0.1}, r"label_smoothing.*-0\.1"),
        ({"epsilons": (math.nan,)}, r"epsilons\[0\] must be finite, got epsilons\[0\]=nan"),
        ({"gamma": math.inf}, r"gamma must be finite, got gamma=inf"),
        ({"alpha": -0.25}, r"alpha must be >= 0.*-0\.25"),
        ({"alpha": (1.0, -2.0)}, r"alpha\[1\] must be >= 0, got -2\.0"),
        ({"alpha": ()}, r"alpha must not be an empty sequence"),
        ({"epsilons": (0.0, -3.0)}, r"increases with p.*allow_increasing=True"),
        ({"epsilons": (-1.0, -1.0)}, r"alpha_2 = 1/2 \+ eps_2 = -0\.5 < 0"),
    ],
)
def test_invalid_specs_raise_value_error_naming_the_field(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        PolySpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epsilons": "1.0"}, "epsilons must be an ordered sequence"),
        ({"epsilons": (True,)}, r"epsilons\[0\] must be a real number, got True"),
        ({"gamma": "2"}, "gamma must be a real number, got '2'"),
        ({"alpha": "0.25"}, "alpha must be None, a number or a sequence"),
        ({"allow_increasing": 1}, "allow_increasing must be a bool"),
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        PolySpec(**kwargs)


def test_increasing_loss_can_be_allowed_explicitly() -> None:
    spec = PolySpec(epsilons=(0.0, -3.0), allow_increasing=True)
    assert spec.coefficients(2)[1] == pytest.approx(-2.5)
    # eps_1 < -1 stays invalid even then: it is the paper's hard bound.
    with pytest.raises(ValueError, match="eps_1"):
        PolySpec(epsilons=(-2.0,), allow_increasing=True)


def test_increase_away_from_p_equal_one_is_caught() -> None:
    # Leading term positive, but a large negative cubic makes h(x) < 0 in the middle of (0, 1).
    with pytest.raises(ValueError, match=r"dl/dp > 0 at p = "):
        PolySpec(epsilons=(0.0, 0.0, -3.0))


@pytest.mark.parametrize(
    "spec_factory",
    [
        lambda: PolySpec.poly1(-1.0),
        lambda: PolySpec.drop(5),
        lambda: PolySpec(epsilons=(-1.0, -0.5, -1 / 3 + 1e-12)),
        lambda: PolySpec.poly1_focal(-1.0, 0.5),
        lambda: PolySpec(epsilons=(-0.9, 0.3, -0.2), gamma=2.0),
    ],
)
def test_valid_edge_specs_are_accepted(spec_factory) -> None:
    spec_factory()


def test_drop_and_coefficients_reject_bad_counts() -> None:
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        PolySpec.drop(0)
    with pytest.raises(ValueError, match="n must be a non-negative integer, got -1"):
        PolySpec.poly1().coefficients(-1)


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown PolySpec field\(s\) \['eps'\]"):
        PolySpec.from_dict({"eps": [1.0]})
    with pytest.raises(TypeError, match="mapping"):
        PolySpec.from_dict([("gamma", 1.0)])  # type: ignore[arg-type]


def test_check_family() -> None:
    assert check_family(PolySpec.focal(2.0, 0.25), "sigmoid") == "sigmoid"
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\] for the sigmoid family, got 1\.5"):
        check_family(PolySpec(alpha=1.5), "sigmoid")
    with pytest.raises(ValueError, match="single number"):
        check_family(PolySpec(alpha=(1.0, 2.0)), "sigmoid")
    with pytest.raises(ValueError, match="alpha has 2 per-class weights but the input has 3 classes"):
        check_family(PolySpec(alpha=(1.0, 2.0)), "softmax", num_classes=3)
    with pytest.raises(ValueError, match="family must be one of"):
        check_family(PolySpec(), "softmax2")
    with pytest.raises(TypeError, match="spec must be a PolySpec"):
        check_family({"epsilons": []}, "softmax")  # type: ignore[arg-type]


def test_is_cross_entropy() -> None:
    assert PolySpec.cross_entropy(label_smoothing=0.1).is_cross_entropy
    assert PolySpec.poly1(0.0).is_cross_entropy
    assert not PolySpec.poly1().is_cross_entropy
    assert not PolySpec.focal().is_cross_entropy


@pytest.mark.parametrize("seed", range(12))
def test_non_negative_leading_coefficients_accept_without_the_grid_and_never_rise(seed: int) -> None:
    """``1/j + eps_j >= 0`` for every ``j`` is accepted at once (no grid); the loss then never rises with ``p``."""
    rng = np.random.default_rng(seed)
    j = np.arange(1, int(rng.integers(1, 6)) + 1)
    epsilons = tuple(float(e) for e in -1.0 / j + rng.uniform(0.0, 2.0, j.size))
    gamma = float(rng.choice([0.0, 0.5, 2.0, 2.7]))
    spec = PolySpec(epsilons=epsilons, gamma=gamma)  # accepted
    x = np.linspace(1e-6, 1.0 - 1e-6, 4001)  # x = 1 - p
    loss = -(x**gamma) * np.log1p(-x) + sum(e * x ** (k + gamma) for k, e in enumerate(spec.epsilons, start=1))
    assert np.all(np.diff(loss) >= -1e-12 * np.abs(loss[1:]))  # non-decreasing in x: never rises as p grows


def test_poly1_spec_caches_by_type_and_value() -> None:
    assert poly1_spec(2.0, 1.5, 0.25, 0.1) is poly1_spec(2.0, 1.5, 0.25, 0.1)
    assert poly1_spec(2.0, 1.5, 0.25, 0.1) == PolySpec.poly1_focal(2.0, 1.5, 0.25, label_smoothing=0.1)
    assert poly1_spec(1).epsilons == (1.0,)
    with pytest.raises(TypeError, match=r"epsilons\[0\] must be a real number, got True"):
        poly1_spec(True)  # equal to the cached 1 and 1.0, but not the same type
    per_class = poly1_spec(1.0, alpha=[0.5, 1.0])  # unhashable: built, not cached
    assert per_class.alpha == (0.5, 1.0)
