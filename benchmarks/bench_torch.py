"""polyloss_torch against ``torch.nn.functional``'s own losses, on CPU.

Usage::

    python benchmarks/bench_torch.py [--quick | --dry-run] [--only TEXT] [--json PATH]

For every shape and variant of ``benchmarks/cases.py`` one group is timed with
the shared loop of ``benchmarks/harness.py`` (interleaved rounds, median of the
per-round ratios to the native loss, CPU time of the process):

* native: ``F.cross_entropy`` for the same labels (class indices, probabilities,
  ``label_smoothing``), or ``F.binary_cross_entropy_with_logits`` for the sigmoid
  variant; always ``reduction="mean"``.
* ours: ``poly1_cross_entropy``, ``poly_loss`` with a ``PolySpec`` (Poly-3,
  softmax Poly-1 focal) or ``poly1_focal_loss``.
* reference (integer labels only): the textbook composition
  ``c = F.cross_entropy(..., reduction="none")``, ``c - eps * expm1(-c)``: the
  cost of the identity PolyLoss relies on, without any library around it.
* peers: the PyPI package ``polyloss`` 0.0.2 (``PolyLoss``, ``(N, C)`` inputs
  only; it one-hot encodes along the last dimension), when installed; and
  torchvision's ``sigmoid_focal_loss`` formula, written out below because no
  CPU torchvision build matches the pinned torch.

A step is ``loss.backward()`` from float32 logits, then the gradient is
dropped. Peak memory is the peak of bytes held by CPU tensors during one step,
from the PyTorch profiler's allocator accounting (``profile_memory=True``),
measured after one warm-up step. The process' resident set size is not used:
the interpreter and the torch libraries dwarf the few-percent differences that
matter, and the C allocator keeps freed pages.

Every process runs torch with one thread (``harness.SINGLE_THREAD_ENV``) and
glibc's steady-allocator settings (``harness.STEADY_ALLOCATOR_ENV``); the
script restarts itself with them when needed.

``run(quick)`` returns one dict per (contender, shape, variant) with at least
``framework``, ``case``, ``shape``, ``ours_s``, ``native_s``, ``ratio`` and
``mem_ratio``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from cases import ALPHA, EPSILON, GAMMA, SMOOTHING, SPEC_LABELS, Shape, Variant, make_inputs, spec_for
from harness import ensure_src_importable
from matrix import Contender, Group, Suite, cli

ensure_src_importable()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from polyloss_torch import poly1_cross_entropy, poly1_focal_loss, poly_loss  # noqa: E402

try:  # a peer, installed in the bench environment only
    import polyloss as pypi_polyloss
except ImportError:
    pypi_polyloss = None

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Step:
    """One forward + backward of ``loss(logits, labels)``; the gradient is dropped afterwards."""

    def __init__(self, loss: Loss, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss, self.logits, self.labels = loss, logits, labels

    def __call__(self) -> None:
        self.loss(self.logits, self.labels).backward()
        self.logits.grad = None


def composition_poly1(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Poly-1 as two lines of torch: per-example CE, then ``c + eps (1 - e^-c)`` with ``expm1``."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (ce - EPSILON * torch.expm1(-ce)).mean()


def torchvision_style_focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss as torchvision defines it (Lin et al. 2017), mean over elements.

    Per element: BCE weighted by ``(1 - p_t)^gamma``, where ``1 - p_t`` is the
    probability given to the wrong answer, then by ``alpha`` for positives and
    ``1 - alpha`` for negatives.
    """
    p = torch.sigmoid(logits)
    wrong = p * (1 - targets) + (1 - p) * targets
    focal = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * wrong**GAMMA
    balance = ALPHA * targets + (1 - ALPHA) * (1 - targets)
    return (balance * focal).mean()


class TorchSuite(Suite):
    def __init__(self) -> None:
        super().__init__("torch", __file__, memory_per_group=False, channels_last=False)

    def setup(self) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(0)

    def versions(self) -> dict[str, str]:
        out = {"torch": torch.__version__}
        if pypi_polyloss is not None:
            out["polyloss (PyPI)"] = getattr(pypi_polyloss, "__version__", "?")
        return out

    def group(self, shape: Shape, variant: Variant) -> Group:
        arrays = make_inputs(shape, variant, channels_last=False)
        logits = torch.from_numpy(arrays["logits"]).requires_grad_(True)
        labels = {kind: torch.from_numpy(array) for kind, array in arrays.items() if kind != "logits"}
        group = Group(lambda loss, kind: Step(loss, logits, labels[kind]))
        add = group.add

        key = variant.key
        if key in ("poly1-int", "poly3-int", "poly1-focal-softmax"):
            add("native", "F.cross_entropy", "native", F.cross_entropy, "index", "ce:index")
        if key == "poly1-int":
            add("ours", "poly1_cross_entropy", "ours", lambda z, t: poly1_cross_entropy(z, t, epsilon=EPSILON), "index")
            add("composition", "CE(reduction='none') + expm1 (reference)", "reference", composition_poly1, "index")
            if pypi_polyloss is not None and len(shape.dims) == 2:
                peer = pypi_polyloss.PolyLoss(epsilon=EPSILON)
                add("peer-pypi", "PyPI polyloss 0.0.2 PolyLoss", "peer", peer, "index")
        elif key in ("poly1-onehot", "poly1-soft"):
            add("native", "F.cross_entropy (probabilities)", "native", F.cross_entropy, variant.labels)
            add(
                "ours",
                "poly1_cross_entropy",
                "ours",
                lambda z, q: poly1_cross_entropy(z, q, epsilon=EPSILON),
                variant.labels,
            )
        elif key == "poly1-smooth":
            add("native", f"F.cross_entropy(label_smoothing={SMOOTHING})", "native",
                lambda z, t: F.cross_entropy(z, t, label_smoothing=SMOOTHING), "index")  # fmt: skip
            add("ours", f"poly1_cross_entropy(label_smoothing={SMOOTHING})", "ours",
                lambda z, t: poly1_cross_entropy(z, t, epsilon=EPSILON, label_smoothing=SMOOTHING), "index")  # fmt: skip
        elif key in SPEC_LABELS:
            spec = spec_for(key)
            add("ours", SPEC_LABELS[key], "ours", lambda z, t: poly_loss(z, t, spec), "index")
        elif key == "poly1-focal-sigmoid":
            add("native", "F.binary_cross_entropy_with_logits", "native", F.binary_cross_entropy_with_logits, "binary")
            add("ours", "poly1_focal_loss", "ours",
                lambda z, t: poly1_focal_loss(z, t, epsilon=EPSILON, alpha=ALPHA, gamma=GAMMA, reduction="mean"),
                "binary")  # fmt: skip
            add("peer-torchvision", "torchvision-style sigmoid_focal_loss", "peer", torchvision_style_focal, "binary")
        else:
            raise ValueError(f"unknown variant {key!r}")
        return group

    def peak_bytes(self, shape: Shape, variant: Variant, contender: Contender) -> int:
        from torch.profiler import ProfilerActivity, profile

        contender.step()  # kernels and lazy state are loaded outside the measurement
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            contender.step()
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "trace.json")
            prof.export_chrome_trace(path)
            with open(path) as handle:
                events = json.load(handle)["traceEvents"]
        memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
        if not memory:
            raise RuntimeError("the profiler recorded no memory events")
        before = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
        return int(max(e["args"]["Total Allocated"] for e in memory) - before)


def run(quick: bool = False, dry: bool = False) -> list[dict[str, Any]]:
    """Benchmark rows (``quick``: a smoke run; ``dry``: tiny shapes, every loss once, no timing)."""
    return TorchSuite().run(quick, dry)


if __name__ == "__main__":
    raise SystemExit(cli(TorchSuite()))
