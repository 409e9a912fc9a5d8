"""The adapters' layout rules (docs/architecture.md), read from their source: no framework is imported.

Every adapter has the same file roles, and none re-makes a decision the core owns: the
spec cache (``polyloss_core.poly1_spec``), the ``ArrayOps`` of a framework (a value built
from its functions, not a subclass), and Poly-1 specs built by hand.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ADAPTERS = ("polyloss_torch", "polyloss_tf", "polyloss_jax")
ROLES = ("_ops.py", "_validate.py", "_impl.py", "functional.py")
# Named constructors a user's spec may come from; the named losses take theirs from poly1_spec.
HAND_BUILT = {"PolySpec", "PolySpec.poly1", "PolySpec.poly1_focal"}


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).glob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.parent.name}/{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and _dotted(node.func) in HAND_BUILT:
            found.append(f"{where}: builds a Poly-1 spec by hand ({_dotted(node.func)}); use poly1_spec")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
                if name.endswith(("lru_cache", "functools.cache")) or name == "cache":
                    found.append(f"{where}: its own cache ({name}); the one spec cache is poly1_spec")
        if isinstance(node, ast.ClassDef) and any(_dotted(base).endswith("ArrayOps") for base in node.bases):
            found.append(f"{where}: subclasses ArrayOps; build an ArrayOps value from functions")
    return found


@pytest.mark.parametrize("package", ADAPTERS)
def test_every_adapter_has_the_same_file_roles(package: str) -> None:
    names = {path.name for path in _modules(package)}
    assert set(ROLES) <= names, f"{package} lacks {sorted(set(ROLES) - names)}"


@pytest.mark.parametrize("package", ADAPTERS)
def test_no_adapter_remakes_a_core_decision(package: str) -> None:
    found = [line for path in _modules(package) for line in _violations(path)]
    assert not found, "\n".join(found)


def test_the_rules_catch_what_they_describe(tmp_path: Path) -> None:
    """The checker itself: each rule fires on a module that breaks it."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import functools\n"
        "from polyloss_core import PolySpec\n"
        "from polyloss_core.series import ArrayOps\n"
        "@functools.lru_cache(maxsize=8)\n"
        "def spec(e):\n"
        "    return PolySpec.poly1(e)\n"
        "class MyOps(ArrayOps):\n"
        "    pass\n"
        "X = PolySpec(epsilons=(1.0,))\n"
    )
    found = _violations(bad)
    assert len(found) == 4, found
    assert sum("by hand" in line for line in found) == 2
