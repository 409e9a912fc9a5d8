"""Every ```python block in the README and the getting-started page runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list:
    params = []
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            params.append(pytest.param(match.group(1), id=f"{page.name}-{number}"))
    return params


SNIPPETS = _snippets()


def test_pages_have_snippets() -> None:
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs(code: str) -> None:
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})
