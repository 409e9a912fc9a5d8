"""Backend selection for the whole suite.

``POLYLOSS_BACKENDS`` (comma list or ``all``; default: every installed backend)
decides which backends the parity matrix runs and which framework folders
(``tests/torch``, ``tests/keras``, ``tests/jax``) are collected. ``tests/core``
always runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import Backend, load, selected_backends

SELECTED = selected_backends()
_FRAMEWORK_DIRS = {Backend.TORCH: "torch", Backend.KERAS: "keras", Backend.JAX: "jax"}
_HERE = Path(__file__).parent


# The command-line tests and the documentation snippets use every framework;
# they run where all three are selected.
_ALL_FRAMEWORKS = all(backend in SELECTED for backend in _FRAMEWORK_DIRS)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    for backend, folder in _FRAMEWORK_DIRS.items():
        if backend not in SELECTED and collection_path.is_relative_to(_HERE / folder):
            return True
    if not _ALL_FRAMEWORKS and any(collection_path.is_relative_to(_HERE / d) for d in ("cli", "docs")):
        return True
    if SELECTED == [Backend.CORE] and collection_path.is_relative_to(_HERE / "fuzz"):
        return True  # the fuzz test compares adapters with the reference: none is selected
    return None


def pytest_report_header(config: pytest.Config) -> str:
    return "polyloss backends: " + ", ".join(b.value for b in SELECTED)


@pytest.fixture(params=SELECTED, ids=lambda b: b.value)
def backend(request: pytest.FixtureRequest):
    """Each selected backend's adapter object, in turn."""
    return load(request.param)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("polyloss fuzz")
    group.addoption(
        "--fuzz-seconds",
        type=float,
        default=12.0,
        help="time budget of the differential fuzz test per selected framework backend, in seconds (default 12)",
    )
    group.addoption("--fuzz-seed", type=int, default=20220411, help="seed of the fuzz test (default fixed)")
    group.addoption("--fuzz-start", type=int, default=0, help="first fuzz case index (to replay a failure)")
