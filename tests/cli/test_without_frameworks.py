"""``coeffs`` and ``plot`` need no deep-learning framework, and ``demo`` says clearly when none is there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = {"torch", "jax", "jaxlib", "optax", "flax", "keras", "tensorflow"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    from typer.testing import CliRunner
    from polyloss_cli.app import app

    runner = CliRunner()
    coeffs = runner.invoke(app, ["coeffs", "--epsilon", "2", "--terms", "3"])
    assert coeffs.exit_code == 0, coeffs.output
    plot = runner.invoke(app, ["plot", "--output", sys.argv[1]])
    assert plot.exit_code == 0, plot.output
    demo = runner.invoke(app, ["demo", "--epochs", "1", "--output", sys.argv[2]])
    assert demo.exit_code == 2, demo.output
    assert "no deep-learning framework" in demo.output and "Traceback" not in demo.output, demo.output
    torch_demo = runner.invoke(app, ["demo", "--backend", "torch", "--output", sys.argv[2]])
    assert torch_demo.exit_code == 2 and '".[torch]"' in torch_demo.output, torch_demo.output
    loaded = sorted(BLOCKED & {name.split(".")[0] for name in sys.modules})
    assert not loaded, loaded
    print("ok")
    """
)


def test_coeffs_and_plot_run_with_every_framework_blocked(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))}
    figure = tmp_path / "curves.png"
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(figure), str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip().endswith("ok")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "demo").exists()


def _run_blocked(blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m polyloss_cli ARGS`` with the top-level packages ``blocked`` made unimportable."""
    prelude = textwrap.dedent(
        f"""
        import runpy, sys

        BLOCKED = {sorted(blocked)!r}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
                return None

        sys.meta_path.insert(0, Blocker())
        sys.argv = ["polyloss", *sys.argv[1:]]
        runpy.run_module("polyloss_cli", run_name="__main__")
        """
    )
    source = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-c", prelude, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_command_without_the_cli_extra_names_the_extra_in_one_line() -> None:
    # What `pip install ".[torch]"` alone gives: numpy and torch, no typer or rich.
    completed = _run_blocked({"typer", "rich", "click"}, "coeffs")
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "'cli' extra" in lines[0]
    assert '".[cli]"' in lines[0]


def test_demo_without_scikit_learn_names_the_extra_in_one_line(tmp_path: Path) -> None:
    completed = _run_blocked({"sklearn"}, "demo", "--output", str(tmp_path / "out"))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert "sklearn" in errors[0]
    assert "'cli' extra" in errors[0]
    assert not (tmp_path / "out").exists()
