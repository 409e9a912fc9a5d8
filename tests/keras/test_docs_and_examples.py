"""The docstring examples, the code in docs/keras.md and examples/keras_compile.py run on the active backend."""

from __future__ import annotations

import doctest
import re
import runpy
from pathlib import Path

import keras
import numpy as np
import pytest

import polyloss_tf.functional
import polyloss_tf.losses

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", [polyloss_tf.functional, polyloss_tf.losses], ids=lambda m: m.__name__)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, extraglobs={"keras": keras}, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.attempted > 0
    assert result.failed == 0


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_keras_docs_page_code_runs(tmp_path, monkeypatch) -> None:
    blocks = _python_blocks((ROOT / "docs" / "keras.md").read_text())
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "keras_docs"}
    for block in blocks:
        exec(compile(block, "docs/keras.md", "exec"), namespace)
    assert np.all(np.isfinite(namespace["history"].history["loss"]))
    assert type(namespace["restored"].loss).__name__ == "Poly1SparseCategoricalCrossentropy"


def test_example_script_trains_saves_and_reloads() -> None:
    script = runpy.run_path(str(ROOT / "examples" / "keras_compile.py"), run_name="keras_compile_example")
    results = script["main"]()
    assert results["accuracy"] > 0.9
    assert results["restored_loss"] == results["loss"]
    assert results["restored_accuracy"] == results["accuracy"]
