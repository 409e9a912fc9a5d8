"""The docs page, the example script and the docstring examples run as written."""

from __future__ import annotations

import doctest
import importlib.util
import re
from pathlib import Path

import pytest
import torch

import polyloss_torch
import polyloss_torch.functional
import polyloss_torch.modules
from polyloss_core import PolySpec

ROOT = Path(__file__).resolve().parents[2]
DOCS_PAGE = ROOT / "docs" / "torch.md"
EXAMPLE = ROOT / "examples" / "torch_training.py"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_docs_page_code_runs() -> None:
    """Every ```python block of docs/torch.md, in order, in one namespace (the training loop asserts accuracy)."""
    blocks = _python_blocks(DOCS_PAGE.read_text())
    assert len(blocks) >= 5
    namespace: dict = {"__name__": "docs_torch"}
    torch.manual_seed(0)
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{DOCS_PAGE}:block{number}", "exec")
        exec(code, namespace)
    assert namespace["accuracy"] > 0.9


def test_example_training_script_learns() -> None:
    spec = importlib.util.spec_from_file_location("torch_training_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main([])
    assert result["accuracy"] > 0.9
    assert result["loss"] < 0.5


@pytest.mark.parametrize("module", [polyloss_torch.functional, polyloss_torch.modules], ids=lambda m: m.__name__)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_api() -> None:
    """The names SPEC section 5 fixes, each documented with the paper reference."""
    assert set(polyloss_torch.__all__) == {
        "LinearPoly1CrossEntropyLoss",
        "LinearPolyLoss",
        "linear_poly1_cross_entropy",
        "linear_poly_loss",
        "poly1_causal_lm_loss",
        "Poly1CrossEntropyLoss",
        "Poly1FocalLoss",
        "PolyLoss",
        "PolySpec",
        "poly1_cross_entropy",
        "poly1_focal_loss",
        "poly_loss",
    }
    assert polyloss_torch.PolySpec is PolySpec
    for name in sorted(set(polyloss_torch.__all__) - {"PolySpec"}):
        doc = getattr(polyloss_torch, name).__doc__
        assert doc is not None
        assert "arXiv:2204.12511" in doc, name
        assert "Shape:" in doc, name
        assert "Examples:" in doc, name
