"""One rank of the DistributedDataParallel check in ``test_distributed.py`` (run as a script).

Usage: ``python ddp_worker.py RANK WORLD_SIZE PORT OUT_DIR``. Each rank trains
on its contiguous shard of one global batch (built by :func:`make_problem`,
identical on every rank and in the test) and saves its gradients after one
backward for each scenario to ``OUT_DIR/rank{RANK}.pt``.
"""

from __future__ import annotations

import faulthandler
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from polyloss_torch import Poly1CrossEntropyLoss

GLOBAL_BATCH = 16
NUM_CLASSES = 4
EPSILON = 2.0
SCENARIOS = ("mean", "weighted-global-denominator", "weighted-local-mean")


def make_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global inputs, labels (a few ignored) and class weights, float64 for tight comparisons."""
    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(GLOBAL_BATCH, 6, generator=generator, dtype=torch.float64)
    y = torch.randint(0, NUM_CLASSES, (GLOBAL_BATCH,), generator=generator)
    y[[1, 2, 11]] = -100  # uneven across the two shards: 2 ignored on rank 0, 1 on rank 1
    weight = torch.tensor([0.5, 1.0, 3.0, 0.25], dtype=torch.float64)
    return x, y, weight


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, NUM_CLASSES)).double()


def scenario_loss(
    scenario: str, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, world_size: int
) -> torch.Tensor:
    """The loss one rank backpropagates (world_size=1: the one-process loss of the whole batch)."""
    if scenario == "mean":
        # No class weights and no ignored labels: every rank's mean has the same denominator.
        return Poly1CrossEntropyLoss(epsilon=EPSILON)(out, y.clamp_min(0))
    if scenario == "weighted-local-mean":
        # torch's weighted mean normalises by this rank's summed target weights only (and
        # ignored labels change the count per rank even without weights).
        return Poly1CrossEntropyLoss(epsilon=EPSILON, weight=weight)(out, y)
    # The documented recipe: sum locally, divide by the summed target weights of the whole batch,
    # times world_size because DDP averages gradients over ranks.
    total = Poly1CrossEntropyLoss(epsilon=EPSILON, weight=weight, reduction="sum")(out, y)
    keep = y != -100
    denominator = weight[y.clamp_min(0)].masked_fill(~keep, 0.0).sum()
    if world_size > 1:
        dist.all_reduce(denominator)
    return total * world_size / denominator


def main(rank: int, world_size: int, port: int, out_dir: Path) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        x, y, weight = make_problem()
        shard = slice(rank * GLOBAL_BATCH // world_size, (rank + 1) * GLOBAL_BATCH // world_size)
        grads = {}
        for scenario in SCENARIOS:
            model = make_model()
            ddp = DistributedDataParallel(model)
            loss = scenario_loss(scenario, ddp(x[shard]), y[shard], weight, world_size)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            grads[scenario] = [p.grad.detach().clone() for p in model.parameters()]
            del ddp, loss  # release DDP's hold on the process group before it is destroyed
        torch.save(grads, out_dir / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears down its connections while the other still uses them
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    # If a rank ever hangs, leave its stacks in the log before the test kills it.
    faulthandler.dump_traceback_later(90, exit=True)
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
