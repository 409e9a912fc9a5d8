"""``polyloss --version`` (one version for every package) and help texts that are not cut short."""

from __future__ import annotations

from .conftest import Invoke


def test_version_comes_from_the_one_source(invoke: Invoke) -> None:
    import polyloss_cli
    import polyloss_core
    import polyloss_jax
    import polyloss_tf
    import polyloss_torch

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"polyloss {polyloss_core.__version__}"
    for package in (polyloss_cli, polyloss_torch, polyloss_tf, polyloss_jax):
        assert package.__version__ == polyloss_core.__version__


def test_top_level_help_shows_every_command_description_in_full() -> None:
    from typer.testing import CliRunner

    from polyloss_cli.app import app

    result = CliRunner().invoke(app, ["--help"], prog_name="polyloss", env={"COLUMNS": "80"})
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands
    for name, command in ((c.name, c) for c in app.registered_commands):
        summary = (command.callback.__doc__ or "").strip().splitlines()[0]
        assert " ".join(summary.split()) in " ".join(commands.split()), (name, summary)
