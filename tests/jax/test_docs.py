"""The Python examples on the JAX docs page run and their assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "jax.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_docs_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = BLOCKS[index]
    exec(compile(code, f"{PAGE.name}[block {index}]", "exec"), {"__name__": f"jax_docs_block_{index}"})
    for expected in re.findall(r"print\(.*\)  # (.+)", code):
        assert expected in capsys.readouterr().out
