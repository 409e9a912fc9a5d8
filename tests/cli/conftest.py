"""Shared helpers of the command-line tests: run ``polyloss`` in-process and read its output."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from polyloss_cli.app import app

Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    """Run ``polyloss ARGS...`` in-process; returns typer's ``Result`` (exceptions are caught)."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), prog_name="polyloss", env={"COLUMNS": "160"})

    return run


def assert_usage_error(result: Result, *fragments: str) -> str:
    """Check exit code 2, no traceback, and exactly one ``Error:`` line containing every fragment.

    Returns:
        The error line.
    """
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG file's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND", "PNG is truncated"
    return width, height


def table_rows(output: str) -> list[list[str]]:
    """Cells of every rich table body row in ``output`` (rows drawn with the box character ``│``)."""
    rows = []
    for line in output.splitlines():
        if line.startswith("│") and line.rstrip().endswith("│"):
            rows.append([cell.strip() for cell in line.strip().strip("│").split("│")])
    return rows
