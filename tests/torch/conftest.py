"""Settings for the torch tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_intra_op_thread() -> Iterator[None]:
    """Run torch on one intra-op thread while these tests run.

    The tensors here are tiny, so a thread pool only adds synchronisation, and on
    a shared machine a busy second core stalls every parallel kernel (the
    example's training loop went from 0.3 s to 6 s). Results do not depend on the
    thread count; the benchmark, not the tests, is where speed is measured.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
