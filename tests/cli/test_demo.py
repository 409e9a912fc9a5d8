"""``polyloss demo``: the identical runs in torch, Keras and JAX, its outputs and its arguments.

One short ``--backend all`` run over two seeds (module fixture) feeds most tests: its
losses must come from this project's adapters, the three frameworks' loss curves
must agree to float32 rounding, and all of them must follow a float64 NumPy
re-implementation of the same SGD. The statistics (learning-rate choice on the
validation split, intervals, paired differences) are tested on their own in
``test_demo_statistics.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import polyloss_jax
import polyloss_tf
import polyloss_torch
from polyloss_cli import app as app_module
from polyloss_cli import runners
from polyloss_cli.data import make_problem
from polyloss_core import PolySpec
from polyloss_core.reference import softmax_poly_loss, softmax_poly_loss_grad

from .conftest import Invoke, assert_usage_error, png_size, table_rows

EPOCHS = 2
SEEDS = (0, 1)
LOSS_NAMES = ["CE", "focal g=2", "poly1 e=-1", "poly1 e=1", "poly1 e=2", "poly1-focal e=1 g=2"]


@pytest.fixture(scope="module")
def all_backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run ``demo --backend all --epochs 2`` once, recording the specs each adapter receives."""
    seen: dict[str, list[PolySpec]] = {"torch": [], "jax": [], "tf": []}
    torch_loss, jax_loss, keras_loss = polyloss_torch.poly_loss, polyloss_jax.poly_loss, polyloss_tf.PolyLoss

    def torch_spy(input: Any, target: Any, spec: PolySpec, **kwargs: Any) -> Any:
        seen["torch"].append(spec)
        return torch_loss(input, target, spec, **kwargs)

    def jax_spy(logits: Any, labels: Any, spec: PolySpec, **kwargs: Any) -> Any:
        seen["jax"].append(spec)
        return jax_loss(logits, labels, spec, **kwargs)

    def keras_spy(spec: PolySpec, **kwargs: Any) -> Any:
        seen["tf"].append(spec)
        return keras_loss(spec, **kwargs)

    output = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polyloss_torch, "poly_loss", torch_spy)
        patch.setattr(polyloss_jax, "poly_loss", jax_spy)
        patch.setattr(polyloss_tf, "PolyLoss", keras_spy)
        result = CliRunner().invoke(
            app_module.app,
            [
                "demo",
                "--backend",
                "all",
                "--epochs",
                str(EPOCHS),
                "--seeds",
                "2",
                "--lr",
                "0.3",
                "--output",
                str(output),
            ],
            prog_name="polyloss",
            env={"COLUMNS": "160"},
        )
    assert result.exit_code == 0, result.output
    document = json.loads((output / "results.json").read_text())
    return {"output": output, "stdout": result.output, "results": document, "seen": seen}


def test_every_loss_ran_in_every_framework_through_our_adapters(all_backends: dict[str, Any]) -> None:
    runs = all_backends["results"]["runs"]
    assert [(r["backend"], r["seed"], r["loss"]) for r in runs] == [
        (b, seed, n) for b in ("torch", "jax", "tf") for seed in SEEDS for n in LOSS_NAMES
    ]
    assert {r["lr"] for r in runs} == {0.3}
    expected = {PolySpec.from_dict(r["spec"]) for r in runs}
    assert expected == {
        PolySpec.cross_entropy(),
        PolySpec.focal(2.0),
        PolySpec.poly1(-1.0),
        PolySpec.poly1(1.0),
        PolySpec.poly1(2.0),
        PolySpec.poly1_focal(1.0, 2.0),
    }
    for backend, specs in all_backends["seen"].items():
        assert expected <= set(specs), backend
    for r in runs:
        assert len(r["train_loss"]) == EPOCHS
        assert len(r["test_balanced_accuracy"]) == EPOCHS
        assert all(np.isfinite(r["train_loss"]))


def test_frameworks_agree_to_float32_rounding(all_backends: dict[str, Any]) -> None:
    parity = all_backends["results"]["parity"]
    assert {(row["loss"], row["backend"]) for row in parity} == {(n, b) for n in LOSS_NAMES for b in ("jax", "tf")}
    assert all(row["reference"] == "torch" for row in parity)
    worst = max(row["max_rel"] for row in parity)
    assert worst < 1e-4, parity
    # The stored numbers are the curves' real differences.
    runs = all_backends["results"]["runs"]
    curves = {(r["backend"], r["loss"], r["seed"]): np.array(r["train_loss"]) for r in runs}
    for row in parity:
        difference = max(
            np.abs(curves[(row["backend"], row["loss"], seed)] - curves[("torch", row["loss"], seed)]).max()
            for seed in SEEDS
        )
        assert row["max_abs"] == pytest.approx(difference, abs=1e-15)
    # Same weights, same batches: after two epochs the test metrics coincide as well.
    metrics = {(r["backend"], r["loss"], r["seed"]): r["metrics"] for r in runs}
    for name in LOSS_NAMES:
        for backend in ("jax", "tf"):
            for seed in SEEDS:
                expected = metrics[("torch", name, seed)]["nll"]
                assert metrics[(backend, name, seed)]["nll"] == pytest.approx(expected, rel=1e-4)


def _numpy_sgd_curve(spec: PolySpec, seed: int) -> list[float]:
    """The demo's training, redone in float64 NumPy with the reference loss and its analytic gradient."""
    problem = make_problem(seed=seed, epochs=EPOCHS, batch_size=32, learning_rate=0.3, imbalance=20.0)
    w1, b1, w2, b2 = (w.astype(np.float64) for w in problem.weights)
    x_all, y_all = problem.x_train.astype(np.float64), problem.y_train
    curve = []
    for batches in problem.batches:
        total = 0.0
        for index in batches:
            x, y = x_all[index], y_all[index]
            hidden = np.maximum(x @ w1 + b1, 0.0)
            logits = hidden @ w2 + b2
            total += float(softmax_poly_loss(logits, y, spec).sum())
            d_logits = softmax_poly_loss_grad(logits, y, spec) / len(index)
            d_hidden = (d_logits @ w2.T) * (hidden > 0)
            w2, b2 = w2 - 0.3 * hidden.T @ d_logits, b2 - 0.3 * d_logits.sum(0)
            w1, b1 = w1 - 0.3 * x.T @ d_hidden, b1 - 0.3 * d_hidden.sum(0)
        curve.append(total / len(y_all))
    return curve


def test_every_framework_follows_a_float64_numpy_sgd(all_backends: dict[str, Any]) -> None:
    runs = all_backends["results"]["runs"]
    for name in LOSS_NAMES:
        spec = PolySpec.from_dict(next(r["spec"] for r in runs if r["loss"] == name))
        for seed in SEEDS:
            expected = _numpy_sgd_curve(spec, seed)
            for r in runs:
                if (r["loss"], r["seed"]) == (name, seed):
                    message = f"{r['backend']} {name} seed {seed}"
                    np.testing.assert_allclose(r["train_loss"], expected, rtol=1e-4, err_msg=message)


def test_tables_and_files(all_backends: dict[str, Any]) -> None:
    rows = table_rows(all_backends["stdout"])
    metric_rows = [row for row in rows if len(row) == 10]
    assert [(row[0], row[1]) for row in metric_rows] == [
        (label, name) for label in ("torch", "jax", "keras") for name in LOSS_NAMES
    ]
    labels = {"torch": "torch", "jax": "jax", "keras": "tf"}
    comparison = {(c["backend"], c["loss"]): c for c in all_backends["results"]["comparison"]}
    for row in metric_rows:
        c = comparison[(labels[row[0]], row[1])]
        assert float(row[2]) == c["lr"] == 0.3
        mean, half = (float(v) for v in row[4].split("±"))
        balanced = c["test"]["balanced_accuracy"]
        assert mean == pytest.approx(balanced["mean"], abs=1e-3)
        assert half == pytest.approx((balanced["high"] - balanced["low"]) / 2, abs=1e-3)
        assert row[9] == c["verdict"]
        if row[1] == "CE":
            assert row[8] == ""
            assert c["verdict"] == "reference"
        else:
            delta = c["difference_to_ce"]["balanced_accuracy"]
            assert float(row[8].split("±")[0]) == pytest.approx(delta["mean"], abs=1e-3)
            assert c["verdict"] in ("within noise", "better than CE", "worse than CE")
    parity_rows = [row for row in rows if len(row) == 4]
    assert len(parity_rows) == 2 * len(LOSS_NAMES)
    assert "largest relative difference" in all_backends["stdout"]
    assert "balanced accuracy vs CE" in all_backends["stdout"]
    width, height = png_size(all_backends["output"] / "learning_curves.png")
    assert width >= 800
    assert height >= 300
    assert (all_backends["output"] / "learning_curves.png").stat().st_size > 20_000
    config = all_backends["results"]["config"]
    assert config["backends"] == ["torch", "jax", "tf"]
    assert config["epochs"] == EPOCHS
    assert config["seeds"] == list(SEEDS)


def test_counts_show_a_long_tail_and_a_balanced_test_split(all_backends: dict[str, Any]) -> None:
    train = np.array(all_backends["results"]["train_class_counts"])
    test = np.array(all_backends["results"]["test_class_counts"])
    assert np.all(np.diff(train) <= 0)
    assert train[0] / train[-1] == pytest.approx(20.0, rel=0.2)
    assert test.max() - test.min() <= 3


def test_default_backend_is_the_first_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for installed, expected in [({"torch", "jax", "tf"}, "torch"), ({"jax", "tf"}, "jax"), ({"tf"}, "tf")]:
        monkeypatch.setattr(runners, "available", lambda name, installed=installed: name in installed)
        assert app_module._pick_backends(None) == [expected]
    monkeypatch.setattr(runners, "available", lambda name: False)
    with pytest.raises(typer.BadParameter, match="no deep-learning framework"):
        app_module._pick_backends(None)


def test_missing_framework_is_a_usage_error(invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runners, "available", lambda name: name != "jax")
    result = invoke("demo", "--backend", "all", "--output", str(tmp_path / "out"))
    assert_usage_error(result, "--backend", "'jax'", '".[jax]"')
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--backend", "mxnet"), ("--backend", "mxnet")),
        (("--epochs", "0"), ("--epochs",)),
        (("--batch-size", "0"), ("--batch-size",)),
        (("--lr", "0"), ("--lr", "> 0")),
        (("--lr", "0.1,-1"), ("--lr", "> 0")),
        (("--lr", "0.1,,1"), ("--lr",)),
        (("--seeds", "0"), ("--seeds",)),
        (("--imbalance", "0.5"), ("--imbalance",)),
        (("--imbalance", "nan"), ("--imbalance",)),
        (("--lr", "inf"), ("--lr", "inf")),
        (("--lr", "nan"), ("--lr", "nan")),
        (("--epsilons", "1;2"), ("--epsilons", "'1;2'")),
        (("--epsilons=-2",), ("--epsilons", "eps_1", "-2.0")),
        (("--gamma", "-1"), ("--gamma", "gamma must be >= 0")),
        (("--focal-epsilon", "-3"), ("--focal-epsilon", "eps_1", "-3.0")),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    invoke: Invoke, tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    result = invoke("demo", *args, "--output", str(tmp_path / "out"))
    assert_usage_error(result, *fragments)
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_rejected(invoke: Invoke, tmp_path: Path) -> None:
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    assert_usage_error(invoke("demo", "--output", str(existing)), "--output", "not a directory")
    assert existing.read_text() == "keep me"


def _no_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any training call fail loudly; returns the list of backends that tried to train."""
    called: list[str] = []

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        called.append(name)
        raise AssertionError("training started before the output directory was checked")

    monkeypatch.setattr("polyloss_cli.demo.run", refuse)
    return called


def test_output_below_a_file_fails_before_training(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called = _no_training(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    assert_usage_error(invoke("demo", "--output", str(blocker / "out")), "--output", "cannot write into")
    assert called == []
    assert blocker.read_text() == "keep me"


def test_unwritable_output_fails_before_training(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests may run as root, for whom permission bits do not apply: refuse the write probe instead.
    called = _no_training(monkeypatch)
    original = Path.write_bytes

    def denied(self: Path, data: bytes) -> int:
        if self.name == ".polyloss-write-test":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", denied)
    assert_usage_error(invoke("demo", "--output", str(tmp_path / "out")), "--output", "Permission denied")
    assert called == []


def _reject_constant(name: str) -> None:
    raise AssertionError(f"results.json contains {name}, which strict JSON parsers reject")


def test_diverged_runs_are_written_as_strict_json_with_nulls(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(
        "demo", "--backend", "torch", "--epsilons", "1", "--seeds", "2", "--epochs", "1", "--lr", "1e30",
        "--output", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "results.json").read_text(), parse_constant=_reject_constant)
    assert document["runs"], document
    for run in document["runs"]:
        assert run["diverged"] is True
        assert run["metrics"]["balanced_accuracy"] is None
        assert None in run["train_loss"]
    for comparison in document["comparison"]:
        assert comparison["lr"] is None
        assert comparison["verdict"] == "diverged at every learning rate"
    assert "diverged at every learning rate" in result.output
