"""``polyloss plot``: the figure, the printed values, the gradient maths and bad arguments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from polyloss_cli.curves import curve_specs, loss_and_gradient
from polyloss_core import PolySpec
from polyloss_core.reference import softmax_poly_loss

from .conftest import Invoke, assert_usage_error, png_size, table_rows


def test_writes_a_real_png_and_prints_values(invoke: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "figures" / "curves.png"
    result = invoke("plot", "--output", str(target), "--epsilons", "-1,2", "--gamma", "2")
    assert result.exit_code == 0, result.output
    width, height = png_size(target)
    assert 800 <= width <= 2000, width
    assert 300 <= height <= 1200, height
    assert target.stat().st_size > 20_000  # eight anti-aliased curves, not an empty canvas
    rows = {row[0]: [float(v) for v in row[1:]] for row in table_rows(result.output)}
    assert list(rows) == [
        "CE",
        "Poly-1 eps=-1",
        "Poly-1 eps=2",
        "focal gamma=2",
        "Poly-1 focal eps=-1 gamma=2",
        "Poly-1 focal eps=2 gamma=2",
    ]
    # Columns: l(0.1), l(0.5), l(0.9), dl/dp(0.1), dl/dp(0.5), dl/dp(0.9); closed forms for CE and Poly-1.
    np.testing.assert_allclose(
        rows["CE"], [-math.log(0.1), -math.log(0.5), -math.log(0.9), -10, -2, -1 / 0.9], atol=1e-4
    )
    poly = [-math.log(p) + 2 * (1 - p) for p in (0.1, 0.5, 0.9)] + [-1 / p - 2 for p in (0.1, 0.5, 0.9)]
    np.testing.assert_allclose(rows["Poly-1 eps=2"], poly, atol=1e-4)
    focal_half = 0.25 * math.log(2)
    assert rows["focal gamma=2"][1] == pytest.approx(focal_half, abs=1e-4)


def test_gamma_zero_leaves_out_the_focal_curves(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("plot", "-o", str(tmp_path / "c.svg"), "--epsilons", "1", "--gamma", "0")
    assert result.exit_code == 0, result.output
    assert [row[0] for row in table_rows(result.output)] == ["CE", "Poly-1 eps=1"]
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    "spec",
    [
        PolySpec.cross_entropy(),
        PolySpec.poly1(-1.0),
        PolySpec.poly1(2.0),
        PolySpec.poly_n(1.0, -0.3, 0.2),
        PolySpec.focal(2.0),
        PolySpec.focal(0.5),
        PolySpec.poly1_focal(1.0, 2.0),
        PolySpec.poly1_focal(-1.0, 3.0),
    ],
    ids=lambda s: f"eps={list(s.epsilons)},g={s.gamma}",
)
def test_loss_and_gradient_match_the_float64_oracle(spec: PolySpec) -> None:
    p = np.linspace(0.02, 0.98, 49)
    loss, grad = loss_and_gradient(p, spec)
    # Two-class logits (log p, log(1 - p)) give p_t = p for label 0.
    logits = np.stack([np.log(p), np.log1p(-p)], axis=1)
    np.testing.assert_allclose(loss, softmax_poly_loss(logits, np.zeros(len(p), np.int64), spec), rtol=1e-12)
    h = 1e-6
    up = softmax_poly_loss(np.stack([np.log(p + h), np.log1p(-(p + h))], axis=1), np.zeros(len(p), np.int64), spec)
    down = softmax_poly_loss(np.stack([np.log(p - h), np.log1p(-(p - h))], axis=1), np.zeros(len(p), np.int64), spec)
    np.testing.assert_allclose(grad, (up - down) / (2 * h), rtol=1e-6, atol=1e-7)


def test_curve_specs_reject_invalid_epsilons() -> None:
    with pytest.raises(ValueError, match="eps_1"):
        curve_specs([-1.5], 2.0)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--epsilons", "1,x"), ("--epsilons", "'x'")),
        (("--epsilons", ""), ("--epsilons",)),
        (("--epsilons=-3",), ("--epsilons", "eps_1", "-3.0")),
        (("--gamma", "-0.5"), ("--gamma", "gamma must be >= 0")),
        (("--output", "curves.txt"), ("--output", "curves.txt", ".png")),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    invoke: Invoke, tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    if "--output" not in args:
        args = (*args, "--output", str(tmp_path / "never.png"))
    assert_usage_error(invoke("plot", *args), *fragments)
    assert not (tmp_path / "never.png").exists()


def test_output_below_a_file_is_a_usage_error_not_a_traceback(invoke: Invoke, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    assert_usage_error(invoke("plot", "--output", str(blocker / "curves.png")), "--output", "cannot write")
    assert blocker.read_text() == "keep me"


def test_missing_parent_directories_are_created(invoke: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "curves.png"
    assert invoke("plot", "--output", str(target)).exit_code == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unwritable_output_is_a_usage_error_not_a_traceback(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Permission bits do not stop root (the tests may run as root), so the save itself is refused.
    def refuse(curves: object, path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("polyloss_cli.curves.save_figure", refuse)
    assert_usage_error(invoke("plot", "--output", str(tmp_path / "c.png")), "--output", "Permission denied")
