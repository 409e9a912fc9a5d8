"""One rank of the tensor-parallel check in ``test_tensor_parallel.py`` (run as a script).

Usage: ``python tp_worker.py RANK WORLD_SIZE PORT OUT_DIR``. Every rank builds the
same logits (:func:`make_problem`), shards them on the class dimension over a
one-dimensional CPU mesh, and for each scenario computes the loss and its gradient
inside ``loss_parallel()`` while ``CommDebugMode`` counts the collectives. It saves
the loss, the gathered gradient and the collective counts to ``OUT_DIR/rank{RANK}.pt``.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from polyloss_core import PolySpec
from polyloss_torch import Poly1CrossEntropyLoss, PolyLoss, poly1_cross_entropy, poly_loss

NUM_TOKENS = 12
NUM_CLASSES = 8  # 4 per rank
IGNORED = (1, 6, 7)


def make_problem() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Logits, labels (some ignored), class weights and an upstream gradient for ``"none"``, float64."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(NUM_TOKENS, NUM_CLASSES, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, NUM_CLASSES, (NUM_TOKENS,), generator=g)
    labels[list(IGNORED)] = -100
    weight = torch.rand(NUM_CLASSES, generator=g, dtype=torch.float64) + 0.5
    upstream = torch.randn(NUM_TOKENS, generator=g, dtype=torch.float64)
    return logits, labels, weight, upstream


def scenarios(weight: Tensor) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """Each scenario's loss of (logits, labels); the same callables run sharded and unsharded."""
    alpha = tuple(float(a) for a in torch.linspace(0.5, 2.0, NUM_CLASSES))
    return {
        "poly1-mean-ignore": lambda z, y: poly1_cross_entropy(z, y, epsilon=2.0),
        "poly1-weighted-mean": lambda z, y: poly1_cross_entropy(z, y, epsilon=1.0, weight=weight),
        "poly1-smoothing-sum": lambda z, y: poly1_cross_entropy(z, y, label_smoothing=0.1, reduction="sum"),
        "focal-none": lambda z, y: poly_loss(z, y, PolySpec.poly1_focal(1.0, 1.5), reduction="none"),
        "module-poly1": lambda z, y: Poly1CrossEntropyLoss(epsilon=-0.5)(z, y),
        "module-polyn-alpha": lambda z, y: PolyLoss(PolySpec(epsilons=(1.0, 0.5), alpha=alpha))(z, y),
    }


def main(rank: int, world_size: int, port: int, out_dir: Path) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    from torch.distributed.tensor.debug import CommDebugMode
    from torch.distributed.tensor.parallel import loss_parallel

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        mesh = init_device_mesh("cpu", (world_size,))
        logits, labels, weight, upstream = make_problem()
        results = {}
        upstream = distribute_tensor(upstream, mesh, [Replicate()])
        for name, loss_fn in scenarios(weight).items():
            z = distribute_tensor(logits, mesh, [Shard(1)]).requires_grad_()
            with loss_parallel(), CommDebugMode() as comms:
                loss = loss_fn(z, labels)
                (loss * upstream if loss.dim() else loss).sum().backward()
            counts = {str(op): n for op, n in comms.get_comm_counts().items()}
            results[name] = {
                "loss": loss.full_tensor().detach(),
                "grad": z.grad.full_tensor(),
                "local_grad_shape": tuple(z.grad.to_local().shape),
                "comms": counts,
                "is_dtensor": type(loss).__name__ == "DTensor",
            }
        torch.save(results, out_dir / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    faulthandler.dump_traceback_later(90, exit=True)
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
