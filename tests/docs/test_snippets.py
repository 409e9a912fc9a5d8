"""Every ```python block of the README and the documentation runs on its own, in a fresh interpreter.

A reader copies one block into a new file or notebook, so each block is run alone
in a new Python process (in an empty working directory), not after the blocks
above it. A block that deliberately continues the one before it must say so on
its first line with the comment ``# continues the example above``; it then runs
after that block, in the same process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
CONTINUES = "# continues the example above"


def _snippets() -> list:
    params = []
    for page in PAGES:
        previous = ""
        for number, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8")), start=1):
            code = match.group(1)
            if code.lstrip().startswith(CONTINUES):
                code = previous + "\n" + code
            params.append(pytest.param(code, id=f"{page.name}-{number}"))
            previous = code
    return params


SNIPPETS = _snippets()


def test_pages_have_snippets() -> None:
    assert len(SNIPPETS) >= 20


def test_a_continuing_block_is_marked_on_its_first_line() -> None:
    # A block that uses a name only an earlier block defines fails in test_snippet_runs; this guards the
    # marker itself: it must be the first line, where a reader sees it.
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            lines = match.group(1).splitlines()
            assert all(CONTINUES not in line for line in lines[1:]), page.name


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs_alone_in_a_fresh_interpreter(code: str, tmp_path: Path) -> None:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert completed.returncode == 0, f"{code}\n--- stderr ---\n{completed.stderr[-4000:]}"
