"""Tensor parallelism: class-sharded DTensor logits under loss_parallel() give the unsharded loss and gradient.

Two gloo ranks on CPU (``tp_worker.py``) shard every scenario's logits on the class
dimension; the loss, its gradient and the collectives each rank ran are compared
with one unsharded process. No rank may all-gather the logits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import polyloss_torch

from . import tp_worker
from .test_distributed import _free_port

WORLD_SIZE = 2
TIMEOUT_S = 150


def _run_ranks(out_dir: Path) -> list[str]:
    """Both ranks, bounded in time; returns their logs (a failed rank fails the test with its log)."""
    src = str(Path(polyloss_torch.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    port = str(_free_port())
    logs = [out_dir / f"rank{rank}.log" for rank in range(WORLD_SIZE)]
    procs = [
        subprocess.Popen(
            [sys.executable, tp_worker.__file__, str(rank), str(WORLD_SIZE), port, str(out_dir)],
            env=env,
            stdout=logs[rank].open("w"),
            stderr=subprocess.STDOUT,
        )
        for rank in range(WORLD_SIZE)
    ]
    try:
        codes = [proc.wait(timeout=TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    texts = [log.read_text() for log in logs]
    for rank, code in enumerate(codes):
        assert code == 0, f"rank {rank} exited with {code}:\n{texts[rank]}"
    return texts


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        raise RuntimeError("this torch build lacks torch.distributed with gloo, which the test requires")
    out_dir = tmp_path_factory.mktemp("tp")
    _run_ranks(out_dir)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def _unsharded(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    logits, labels, weight, upstream = tp_worker.make_problem()
    z = logits.clone().requires_grad_()
    loss = tp_worker.scenarios(weight)[name](z, labels)
    (loss * upstream if loss.dim() else loss).sum().backward()
    return loss.detach(), z.grad


SCENARIOS = list(tp_worker.scenarios(torch.ones(tp_worker.NUM_CLASSES)))


@pytest.mark.parametrize("name", SCENARIOS)
def test_sharded_loss_and_gradient_equal_unsharded(sharded, name: str) -> None:
    want_loss, want_grad = _unsharded(name)
    for rank_results in sharded:
        got = rank_results[name]
        assert got["is_dtensor"], "the loss of DTensor logits is a (replicated) DTensor, as F.cross_entropy's"
        torch.testing.assert_close(got["loss"], want_loss, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(got["grad"], want_grad, rtol=1e-12, atol=1e-13)
        assert got["local_grad_shape"] == (tp_worker.NUM_TOKENS, tp_worker.NUM_CLASSES // WORLD_SIZE)


@pytest.mark.parametrize("name", SCENARIOS)
def test_sharded_loss_never_gathers_the_logits(sharded, name: str) -> None:
    """Only per-row all-reduces: no all-gather (nor any other collective) of the class dimension."""
    for rank_results in sharded:
        comms = rank_results[name]["comms"]
        assert comms, "the sharded loss must communicate (all-reduces of per-row numbers)"
        assert all("all_reduce" in op for op in comms), comms


def test_ignore_index_is_what_torch_loss_parallel_gets_wrong_or_right(sharded) -> None:
    """The ignored tokens get no gradient on any rank."""
    for rank_results in sharded:
        grad = rank_results["poly1-mean-ignore"]["grad"]
        assert torch.count_nonzero(grad[list(tp_worker.IGNORED)]) == 0
        assert torch.count_nonzero(grad) > 0
