"""The page's explanations: why a case misses its target, and what the other variants cost, with this run's numbers.

Every sentence that quotes a number takes it from the rows of the run, so the
page never states a result that was not measured in it. The causes were found
with the PyTorch profiler, py-spy and small experiments; the texts say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import format_ratio

Row = dict[str, Any]
Find = Callable[..., Row | None]


def _ratio(row: Row | None) -> str:
    return "n/a" if row is None else format_ratio(row["ratio"])


def _noise(row: Row) -> str:
    q1 = row["ratio_iqr"][0]
    if row["target"] is not None and q1 <= row["target"]:
        return f" Its lower quartile ({q1:.2f}x) is within the target, so part of the miss is this machine's noise."
    return ""


def torch_integer(row: Row, find: Find) -> str:
    reference = find("torch", row["shape_key"], "poly1-int", "reference")
    return (
        f"The two-line composition that PolyLoss rests on (per-example `F.cross_entropy`, then "
        f"`c - eps * expm1(-c)`) measured {_ratio(reference)} in the same rounds; "
        "[how the library's own backward usually beats both]"
        "(#why-pytorchs-poly-1-is-cheaper-than-its-own-cross-entropy) is explained below." + _noise(row)
    )


def torch_one_hot(row: Row, find: Find) -> str:
    soft = find("torch", row["shape_key"], "poly1-soft")
    integer = find("torch", row["shape_key"], "poly1-int")
    return (
        "With probability targets `poly1_cross_entropy` cannot know that the rows are one-hot without "
        "reading them, so it evaluates the polynomial for every class, as for soft targets "
        f"({_ratio(soft)}); in eager PyTorch each elementwise step is a separate pass over the logits. "
        "Telling one-hot rows apart was tried and dropped: the reads (a max, a sum and an index per row) cost "
        "about as much as the class-index path saves. Pass class indices (`target.argmax(1)`): the "
        f"integer-label row of this shape measured {_ratio(integer)}." + _noise(row)
    )


def keras_one_hot(row: Row, find: Find) -> str:
    integer = find("keras-tf", row["shape_key"], "poly1-int")
    return (
        "`Poly1CategoricalCrossentropy` reads the labels once per batch (the sum of their squares equals the "
        "number of rows exactly when every row is one-hot) and then reuses TensorFlow's fused cross-entropy and "
        "its gradient; that read of an array as large as the logits is what it adds. Integer labels with "
        f"`Poly1SparseCategoricalCrossentropy` measured {_ratio(integer)} at this shape." + _noise(row)
    )


def jax_one_hot(row: Row, find: Find) -> str:
    integer = find("jax", row["shape_key"], "poly1-int")
    peer = find("jax", row["shape_key"], "poly1-onehot", "peer")
    return (
        "`poly1_cross_entropy` treats labels as distributions and evaluates `1 - p_c` for every class, one "
        "more exponential per logit in the same fused XLA loop; optax's own `poly_loss_cross_entropy` does the "
        f"same and measured {_ratio(peer)}. For one-hot labels, `poly1_cross_entropy_with_integer_labels` on "
        f"`labels.argmax(-1)` measured {_ratio(integer)}." + _noise(row)
    )


def integer_elsewhere(row: Row, find: Find) -> str:
    return (
        "The integer-label path is an elementwise function of the framework's own cross-entropy here too; "
        "no cause beyond the measurement's noise is known." + _noise(row)
    )


EXPLANATIONS: dict[tuple[str, str], Callable[[Row, Find], str]] = {
    ("torch", "poly1-int"): torch_integer,
    ("torch", "poly1-onehot"): torch_one_hot,
    ("keras-tf", "poly1-onehot"): keras_one_hot,
    ("jax", "poly1-onehot"): jax_one_hot,
    ("keras-tf", "poly1-int"): integer_elsewhere,
    ("jax", "poly1-int"): integer_elsewhere,
}


def _span(rows: list[Row], framework: str, case: str, kind: str = "ours") -> str:
    values = sorted(r["ratio"] for r in rows if (r["framework"], r["case"], r["kind"]) == (framework, case, kind))
    if not values:
        return "n/a"
    if len(values) == 1:
        return format_ratio(values[0])
    return f"{format_ratio(values[0])} to {format_ratio(values[-1])}"


def notes(rows: list[Row], find: Find) -> str:
    """The investigation of PyTorch at (4096, 1000) and what the variants without a target cost."""
    ours = find("torch", "classification", "poly1-int")
    reference = find("torch", "classification", "poly1-int", "reference")
    native_ms = "n/a" if ours is None else f"{ours['native_s'] * 1e3:.2f} ms"
    torch_focal = find("torch", "detection", "poly1-focal-sigmoid")
    torch_focal_peer = find("torch", "detection", "poly1-focal-sigmoid", "peer")
    return f"""
## Why PyTorch's Poly-1 is cheaper than its own cross-entropy

`poly1_cross_entropy` at (4096, 1000) measured {_ratio(ours)} in this run, against
{_ratio(reference)} for the bare two-line composition (`F.cross_entropy(...,
reduction="none")`, then `c - eps * expm1(-c)`) and {native_ms} per step for
`F.cross_entropy`. What was looked at:

- **Where torch's time goes.** Timed alone on one thread at (4096, 1000):
  `log_softmax` 2.6 ms, `softmax` 2.2 ms, the NLL backward's zero-filled one-hot
  gradient 0.4 ms, the log-softmax backward 1.4 ms, `torch.exp` over the same
  4M numbers 2.9 ms, and one multiply by a per-row factor 0.9 ms. So
  `F.cross_entropy` spends about as long differentiating as computing, and most
  of it in two full passes that only exist to turn a one-hot gradient into
  `softmax(z) - onehot(t)`.
- **What the library runs.** For class indices `TargetCrossEntropy` (in
  `polyloss_torch._autograd`) keeps the softmax itself from the forward pass
  (torch's softmax kernel, faster than its log-softmax at 1000 classes) and
  reads `c = -log p_t` and `1 - p_t` off it; its backward is one multiply of
  the saved softmax by the per-example factor `dl/dc` and one write per example
  at the target. No one-hot tensor is allocated, hence the lower peak memory.
  Where `p_t` underflows, `c` is recomputed for those examples as
  `logsumexp(z) - z_t`, so it stays exact. For fewer than 16 contiguous classes
  the forward uses `log_softmax` and `exp` instead, the faster pair there.
- **Accuracy.** On 20 000 rows with the target's margin swept from 0 to 40,
  `c` and `1 - p_t` from the softmax had the same error against float64 as
  `F.cross_entropy` and `-expm1(-c)` (largest absolute error 3.7e-7 against
  3.4e-7; the relative error of `1 - p_t` above 1e-6 was the same, set by the
  rounding of the row sum in both).
- **What was tried before.** Keeping torch's own kernels and adding the
  polynomial (the reference row), an autograd Function calling aten's NLL and
  log-softmax backward with the Poly-1 factor folded in, and a backward that
  exponentiates saved log-probabilities: 1.04-1.19x. The first two carry torch's
  two-pass backward; the last pays for `torch.exp`, which is slower than the
  fused log-softmax backward.

## The other variants

No target is promised for these; the numbers say what each costs (ratio ranges
over the shapes of this run):

- **Poly-3 and softmax Poly-1 focal with integer labels** take the same
  hard-label path, an elementwise function of the fused cross-entropy: PyTorch
  {_span(rows, "torch", "poly3-int")} and {_span(rows, "torch", "poly1-focal-softmax")},
  Keras {_span(rows, "keras-tf", "poly3-int")}, JAX {_span(rows, "jax", "poly3-int")}
  and {_span(rows, "jax", "poly1-focal-softmax")}. Keras' softmax focal loss takes
  one-hot labels: ours {_span(rows, "keras-tf", "poly1-focal-softmax")}, Keras'
  own `CategoricalFocalCrossentropy` {_span(rows, "keras-tf", "poly1-focal-softmax", "peer")}.
- **Soft probability labels** need `l(p_c)` for every class: PyTorch
  {_span(rows, "torch", "poly1-soft")} (eager, one pass over the logits per
  elementwise step), Keras {_span(rows, "keras-tf", "poly1-soft")}, JAX
  {_span(rows, "jax", "poly1-soft")} (XLA fuses the steps into one loop), where
  optax's `poly_loss_cross_entropy` measured {_span(rows, "jax", "poly1-soft", "peer")}.
- **Label smoothing**: PyTorch {_span(rows, "torch", "poly1-smooth")} (the Poly-1
  closed form above), Keras {_span(rows, "keras-tf", "poly1-smooth")} and JAX
  {_span(rows, "jax", "poly1-smooth")}, which still evaluate every class.
- **Sigmoid Poly-1 focal** against the framework's binary cross-entropy is a
  different loss with a focal factor, so its ratio measures the focal loss more
  than the polynomial: PyTorch {_ratio(torch_focal)} (torchvision's formula
  {_ratio(torch_focal_peer)}; ours computes `1 - p_t` from two sigmoids so that it
  stays accurate as `p -> 1`, and adds the epsilon term), Keras
  {_span(rows, "keras-tf", "poly1-focal-sigmoid")} (Keras' `BinaryFocalCrossentropy`
  {_span(rows, "keras-tf", "poly1-focal-sigmoid", "peer")}), JAX
  {_span(rows, "jax", "poly1-focal-sigmoid")} (optax's `sigmoid_focal_loss`
  {_span(rows, "jax", "poly1-focal-sigmoid", "peer")}).
- **The PyPI `polyloss` package** (PyTorch, `(N, C)` only) computes the softmax a
  second time and builds a one-hot matrix: {_span(rows, "torch", "poly1-int", "peer")}.
"""
