"""DistributedDataParallel over two CPU processes (gloo, 127.0.0.1) gives the one-process gradient."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import polyloss_torch

from . import ddp_worker

WORKER = Path(ddp_worker.__file__)
WORLD_SIZE = 2
TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_process_grads() -> dict[str, list[torch.Tensor]]:
    x, y, weight = ddp_worker.make_problem()
    grads = {}
    for scenario in ddp_worker.SCENARIOS:
        model = ddp_worker.make_model()
        ddp_worker.scenario_loss(scenario, model(x), y, weight, world_size=1).backward()
        grads[scenario] = [p.grad.detach().clone() for p in model.parameters()]
    return grads


def _launch(out_dir: Path, port: int) -> tuple[list[int | None], list[str]]:
    """Start every rank, wait (bounded); stop the others as soon as one fails. Returns exit codes and logs."""
    src = str(Path(polyloss_torch.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo's own connections on the loopback interface
    logs = [out_dir / f"rank{rank}.log" for rank in range(WORLD_SIZE)]
    procs = []
    for rank in range(WORLD_SIZE):
        with open(logs[rank], "w") as log:  # a file, not a pipe: a full pipe would block a rank mid-collective
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), str(rank), str(WORLD_SIZE), str(port), str(out_dir)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(code == 0 for code in codes) or any(code not in (None, 0) for code in codes):
                break
            time.sleep(0.1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [proc.returncode for proc in procs], [log.read_text() for log in logs]


@pytest.fixture(scope="module")
def ddp_grads(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, list[torch.Tensor]]]:
    """Run the two ranks once (bounded in time) and load what each saved."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        raise RuntimeError("this torch build lacks torch.distributed with gloo, which the test requires")
    for attempt in range(3):
        out_dir = tmp_path_factory.mktemp("ddp")
        codes, logs = _launch(out_dir, _free_port())
        # The port was free when chosen; another process may take it before rank 0 binds it.
        if any(code != 0 for code in codes) and "address already in use" in "".join(logs).lower() and attempt < 2:
            continue
        break
    for rank, code in enumerate(codes):
        assert code == 0, f"rank {rank} exited with {code} (negative: killed, e.g. after {TIMEOUT_S} s):\n{logs[rank]}"
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("scenario", ["mean", "weighted-global-denominator"])
def test_ddp_gradient_equals_one_process_gradient(ddp_grads, scenario: str) -> None:
    """Unweighted mean with equal shards, and the weighted mean via the global-denominator recipe."""
    expected = _one_process_grads()[scenario]
    for rank_grads in ddp_grads:
        for got, want in zip(rank_grads[scenario], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_weighted_local_mean_is_not_the_global_weighted_mean(ddp_grads) -> None:
    """The documented caveat: with class weights (or ignored labels) each rank's mean has its own
    denominator, so averaging per-rank means differs from the global weighted mean."""
    global_mean = _one_process_grads()["weighted-local-mean"]
    local = ddp_grads[0]["weighted-local-mean"]
    assert not all(torch.allclose(g, w, rtol=1e-3) for g, w in zip(local, global_mean, strict=True))
    # Both ranks still agree with each other: DDP averaged the same per-rank gradients.
    for g0, g1 in zip(ddp_grads[0]["weighted-local-mean"], ddp_grads[1]["weighted-local-mean"], strict=True):
        assert torch.equal(g0, g1)
