"""polyloss_core.checks: every check names the argument and shows the value; NumPy scalars in, bool out."""

from __future__ import annotations

import numpy as np
import pytest

from polyloss_core import checks

# (check, bad value, exception, text the message must contain besides the argument name)
BAD = [
    (lambda v: checks.real("beta", v), True, TypeError, "True"),
    (lambda v: checks.real("beta", v), "2", TypeError, "'2'"),
    (lambda v: checks.real("beta", v), float("nan"), ValueError, "nan"),
    (lambda v: checks.check_epsilon(v, "beta"), -1.5, ValueError, "-1.5"),
    (lambda v: checks.check_epsilon(v, "beta"), float("inf"), ValueError, "inf"),
    (lambda v: checks.check_epsilon(v, "beta"), np.bool_(True), TypeError, "True"),
    (lambda v: checks.check_gamma(v, "beta"), -0.5, ValueError, "-0.5"),
    (lambda v: checks.check_gamma(v, "beta"), False, TypeError, "False"),
    (lambda v: checks.check_label_smoothing(v, "beta"), 1.0, ValueError, "1.0"),
    (lambda v: checks.check_label_smoothing(v, "beta"), -0.1, ValueError, "-0.1"),
    (lambda v: checks.check_reduction(v, name="beta"), "avg", ValueError, "'avg'"),
    (lambda v: checks.check_reduction(v, name="beta"), None, ValueError, "None"),
    (lambda v: checks.check_int("beta", v), True, TypeError, "True"),
    (lambda v: checks.check_int("beta", v), 1.0, TypeError, "1.0"),
    (lambda v: checks.check_bool("beta", v), 1, TypeError, "1"),
    (lambda v: checks.check_sigmoid_alpha(v, name="beta"), 1.5, ValueError, "1.5"),
    (lambda v: checks.check_sigmoid_alpha(v, name="beta"), -0.25, ValueError, "-0.25"),
    (lambda v: checks.check_sigmoid_alpha(v, name="beta"), True, TypeError, "True"),
]


@pytest.mark.parametrize(("check", "value", "error", "shown"), BAD, ids=[f"{i}-{b[1]!r}" for i, b in enumerate(BAD)])
def test_each_check_names_the_argument_and_shows_the_value(check, value, error, shown) -> None:
    with pytest.raises(error) as info:
        check(value)
    message = str(info.value)
    assert "beta" in message
    assert shown in message


@pytest.mark.parametrize(
    ("check", "value", "want"),
    [
        (lambda v: checks.real("x", v), np.float32(2.5), 2.5),
        (lambda v: checks.real("x", v), np.int64(3), 3.0),
        (lambda v: checks.real("x", v), np.array(0.5), 0.5),
        (checks.check_epsilon, np.float32(2.0), 2.0),
        (checks.check_epsilon, np.float64(-1.0), -1.0),
        (checks.check_gamma, np.float16(1.5), 1.5),
        (checks.check_label_smoothing, np.float64(0.1), 0.1),
        (lambda v: checks.check_int("x", v), np.int32(-100), -100),
        (lambda v: checks.check_bool("x", v), np.bool_(True), True),
        (checks.check_sigmoid_alpha, np.float32(0.25), 0.25),
    ],
)
def test_numpy_scalars_are_accepted_and_returned_as_python_numbers(check, value, want) -> None:
    got = check(value)
    assert got == want
    assert type(got) is type(want)


@pytest.mark.parametrize("check", [checks.check_epsilon, checks.check_gamma, checks.check_label_smoothing])
def test_bool_is_not_a_number(check) -> None:
    for value in (True, False, np.bool_(False)):
        with pytest.raises(TypeError, match="bool"):
            check(value)


def test_negative_alpha_disables_only_where_asked() -> None:
    assert checks.check_sigmoid_alpha(-1, negative_disables=True) is None
    assert checks.check_sigmoid_alpha(None) is None
    with pytest.raises(ValueError, match="alpha"):
        checks.check_sigmoid_alpha(-1)


def test_message_builders_name_the_argument_and_show_the_values() -> None:
    message = str(checks.class_index_error(7, 5, -100, name="labels"))
    for shown in ("labels", "7", "[0, 5)", "-100"):
        assert shown in message
    assert "ignore_index" not in str(checks.class_index_error(-1, 3))
    message = str(checks.target_range_error(-0.5, 2.0, name="y_true"))
    for shown in ("y_true", "-0.5", "2.0"):
        assert shown in message
    message = str(checks.shape_error("weight", (5,), (3,), "one entry per class"))
    assert message == "weight must have shape (5,), one entry per class, got (3,)"
    for error in (checks.class_index_error(9, 2), checks.target_range_error(0, 3), checks.shape_error("a", (), (1,))):
        assert isinstance(error, ValueError)


def test_check_class_indices_names_the_first_bad_label_and_honours_the_ignored_value() -> None:
    checks.check_class_indices(np.array([[0, 4], [-100, 2]]), 5, -100)
    with pytest.raises(ValueError, match=r"y_true contains class index -1, .*\(ignore_class=-100\)"):
        checks.check_class_indices(np.array([0, -1, 7]), 5, -100, name="y_true", ignore_name="ignore_class")


@pytest.mark.parametrize("bad", [1.5, float("nan")])
def test_check_class_indices_rejects_non_integral_floating_labels(bad: float) -> None:
    checks.check_class_indices(np.array([0.0, 3.0]), 5)
    with pytest.raises(ValueError, match="labels must hold integer class indices, got the value"):
        checks.check_class_indices(np.array([0.0, bad]), 5, name="labels")
