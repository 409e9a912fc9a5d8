"""Train a small classifier with Poly-1 cross-entropy on generated data (CPU, a few seconds).

Run it with ``python examples/torch_training.py``. The data are three
interleaved noisy spirals in 2-D, so a linear model cannot fit them but a small
MLP can. The only change from an ordinary PyTorch training loop is the loss
line: ``nn.CrossEntropyLoss()`` becomes ``Poly1CrossEntropyLoss(epsilon=...)``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

try:
    from polyloss_torch import Poly1CrossEntropyLoss
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from polyloss_torch import Poly1CrossEntropyLoss


def make_spirals(n_per_class: int, num_classes: int = 3, noise: float = 0.15, seed: int = 0):
    """``(features, labels)``: ``num_classes`` spiral arms in the plane."""
    generator = torch.Generator().manual_seed(seed)
    radius = torch.linspace(0.1, 1.0, n_per_class).repeat(num_classes)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    angle = 4.0 * radius + labels * (2.0 * math.pi / num_classes)
    angle = angle + noise * torch.randn(angle.shape, generator=generator)
    features = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return features, labels


def train(epsilon: float = 2.0, steps: int = 400, seed: int = 0) -> dict[str, float]:
    """Train an MLP and return its final training loss and held-out accuracy."""
    torch.manual_seed(seed)
    x_train, y_train = make_spirals(300, seed=seed)
    x_test, y_test = make_spirals(100, seed=seed + 1)

    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    loss_fn = Poly1CrossEntropyLoss(epsilon=epsilon)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    model.train()
    for step in range(steps):
        batch = torch.randint(0, len(x_train), (128,))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_train[batch]), y_train[batch])
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        final_loss = loss_fn(model(x_train), y_train).item()
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    print(f"final training loss {final_loss:.4f}, held-out accuracy {accuracy:.3f}")
    return {"loss": final_loss, "accuracy": accuracy}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=2.0, help="Poly-1 epsilon (default 2.0)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps (default 400)")
    args = parser.parse_args(argv)
    return train(epsilon=args.epsilon, steps=args.steps)


if __name__ == "__main__":
    main()
