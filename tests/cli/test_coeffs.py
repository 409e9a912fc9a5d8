"""``polyloss coeffs``: the coefficient table, the JSON spec and bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyloss_core import PolySpec

from .conftest import Invoke, assert_usage_error, table_rows


def _json_block(output: str) -> dict:
    """The JSON object printed after the table (from the first line that is exactly ``{``)."""
    lines = output.splitlines()
    start = lines.index("{")
    end = max(i for i, line in enumerate(lines) if line == "}")
    return json.loads("\n".join(lines[start : end + 1]))


def test_table_lists_alpha_j_for_poly1_focal(invoke: Invoke) -> None:
    result = invoke("coeffs", "--epsilon", "1.5", "--gamma", "2", "--terms", "6")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    expected = PolySpec.poly1_focal(1.5, 2.0).coefficients(6)
    for j, row in enumerate(rows, start=1):
        power, eps_j, alpha_j, ce = (float(cell) for cell in row[1:])
        assert power == pytest.approx(j + 2.0)
        assert eps_j == pytest.approx(1.5 if j == 1 else 0.0)
        assert alpha_j == pytest.approx(expected[j - 1], rel=1e-5)
        assert ce == pytest.approx(1.0 / j, rel=1e-5)
    assert float(rows[0][3]) == pytest.approx(2.5)


def test_printed_json_round_trips_to_the_same_spec(invoke: Invoke) -> None:
    result = invoke("coeffs", "-e", "2", "-e", "-0.25", "-g", "0.5", "-n", "3")
    assert result.exit_code == 0, result.output
    spec = PolySpec.from_dict(_json_block(result.output))
    assert spec == PolySpec(epsilons=(2.0, -0.25), gamma=0.5)
    alphas = [float(row[3]) for row in table_rows(result.output)]
    np.testing.assert_allclose(alphas, [3.0, 0.25, 1.0 / 3.0], rtol=1e-5)


def test_json_flag_prints_only_the_spec(invoke: Invoke) -> None:
    result = invoke("coeffs", "--json", "--epsilon", "-1", "--epsilon", "0.5")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert PolySpec.from_dict(document) == PolySpec.poly_n(-1.0, 0.5)
    assert document["epsilons"] == [-1.0, 0.5]


def test_default_is_poly1_with_epsilon_one(invoke: Invoke) -> None:
    result = invoke("coeffs", "--json")
    assert result.exit_code == 0, result.output
    assert PolySpec.from_dict(json.loads(result.output)) == PolySpec.poly1()


def test_epsilon_below_minus_one_is_a_usage_error_with_the_spec_message(invoke: Invoke) -> None:
    result = invoke("coeffs", "--epsilon", "-2")
    line = assert_usage_error(result, "--epsilon", "eps_1", "-2.0", "must be a finite number >= -1")
    assert "not a valid PolySpec" in line


def test_increasing_poly_n_is_rejected_with_the_reason(invoke: Invoke) -> None:
    # alpha_1 = 1 - 1 = 0 and alpha_2 = 1/2 - 1 < 0: the loss rises next to p = 1.
    result = invoke("coeffs", "--epsilon", "-1", "--epsilon", "-1")
    assert_usage_error(result, "increases with p", "alpha_2")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--gamma", "-1"), ("--gamma", "gamma must be >= 0", "-1.0")),
        (("--terms", "0"), ("--terms",)),
        (("--epsilon", "abc"), ("--epsilon",)),
        (("--epsilon", "nan"), ("--epsilon", "finite", "nan")),
        (("--unknown",), ("--unknown",)),
    ],
)
def test_bad_arguments_exit_2_with_one_line(invoke: Invoke, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_usage_error(invoke("coeffs", *args), *fragments)


def test_epsilons_whose_validity_check_overflows_are_rejected(invoke: Invoke) -> None:
    result = invoke("coeffs", "-e", "0", "-e", "1e308", "-e", "-1e308")
    assert_usage_error(result, "--epsilon", "not a valid PolySpec")
