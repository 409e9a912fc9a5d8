"""docs/cli.md shows every command's complete ``--help``, exactly as the program prints it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyloss_cli.app import app

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HELP_BLOCK = re.compile(r"^```text\n\$ polyloss (?P<args>[^\n]*--help)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = {match["args"]: match["body"] for match in HELP_BLOCK.finditer(PAGE.read_text(encoding="utf-8"))}


def test_the_page_has_the_help_of_every_command() -> None:
    assert set(BLOCKS) == {"--help", "coeffs --help", "plot --help", "demo --help"}


@pytest.mark.parametrize("args", sorted(BLOCKS))
def test_help_block_matches_the_program(args: str) -> None:
    result = CliRunner().invoke(app, args.split(), prog_name="polyloss", terminal_width=100)
    assert result.exit_code == 0
    printed = [line.rstrip() for line in result.output.strip().splitlines()]
    documented = [line.rstrip() for line in BLOCKS[args].strip().splitlines()]
    assert documented == printed
