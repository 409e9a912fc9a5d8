"""Fixtures for the JAX adapter's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest


@pytest.fixture
def x64() -> Iterator[None]:
    """64-bit mode for one test only (JAX's scoped ``enable_x64``)."""
    with jax.enable_x64(True):
        yield
