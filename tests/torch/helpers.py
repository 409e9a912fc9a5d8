"""Input builders shared by the torch tests."""

from __future__ import annotations

import torch

# torch's own compile and forward-AD internals still call torch.jit.script / script_method, which warn.
TORCH_JIT_WARNING = "ignore:`torch.jit.script:DeprecationWarning"

# Layout name -> logits shape (classes on dimension 1, or 0 when unbatched).
LAYOUTS: dict[str, tuple[int, ...]] = {
    "NC": (7, 5),
    "C": (5,),
    "NCd": (3, 5, 4),
    "NCHW": (2, 5, 3, 4),
}


def class_dim(shape: tuple[int, ...]) -> int:
    return 0 if len(shape) == 1 else 1


def target_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    dim = class_dim(shape)
    return shape[:dim] + shape[dim + 1 :]


def logits(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32, scale: float = 3.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=generator, dtype=torch.float64)).to(dtype)


def class_indices(shape: tuple[int, ...], seed: int, ignore_index: int | None = None, every: int = 3) -> torch.Tensor:
    """Random class indices for logits of ``shape``; every ``every``-th entry set to ``ignore_index``."""
    generator = torch.Generator().manual_seed(seed + 1)
    num_classes = shape[class_dim(shape)]
    target = torch.randint(0, num_classes, target_shape(shape), generator=generator)
    if ignore_index is not None and target.dim():
        target.view(-1)[1::every] = ignore_index
    return target


def probabilities(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 2)
    raw = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.05
    return (raw / raw.sum(dim=class_dim(shape), keepdim=True)).to(dtype)


def class_weight(num_classes: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 3)
    return (0.25 + 2.0 * torch.rand(num_classes, generator=generator, dtype=torch.float64)).to(dtype)
