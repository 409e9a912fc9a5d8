"""Turns the rows of every framework into console tables, the docs page and the ratio plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cases import FULL_SHAPES, SHAPE_SETS, VARIANTS, VARIANTS_BY_KEY
from harness import PRESETS, format_ratio

Row = dict[str, Any]
FRAMEWORK_TITLES = {"torch": "PyTorch", "keras-tf": "Keras 3 (TensorFlow backend)", "jax": "JAX / optax"}
HARD_LABELS = ("poly1-int", "poly1-onehot")


def machine() -> dict[str, str]:
    """CPU model, core count, OS and today's date (UTC)."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _shape_text(row: Row) -> str:
    return "(" + ", ".join(str(d) for d in row["shape"]) + ")"


def _met(row: Row) -> str:
    if row["target"] is None:
        return ""
    return " (meets)" if row["ratio"] <= row["target"] else " **(misses)**"


def framework_table(rows: Iterable[Row]) -> str:
    """One markdown table: every non-native loss of one framework."""
    lines = [
        "| shape | variant | loss | time vs native | IQR | peak memory vs native | ms per step (loss / native) | rounds |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        q1, q3 = row["ratio_iqr"]
        loss = row["contender"] if row["kind"] == "ours" else f"*{row['contender']}*"
        lines.append(
            f"| {row['shape_key']} {_shape_text(row)} | {VARIANTS_BY_KEY[row['case']].title} | {loss} "
            f"| {format_ratio(row['ratio'])}{_met(row)} | {q1:.2f}-{q3:.2f} | {format_ratio(row['mem_ratio'])} "
            f"| {_ms(row['ours_s'])} / {_ms(row['native_s'])} | {row['rounds']} |"
        )
    return "\n".join(lines)


def summary_table(rows: list[Row], frameworks: list[str]) -> str:
    """Poly-1 with hard labels, ours only: one line per (shape, label kind), one column per framework."""
    lookup = {(r["framework"], r["shape_key"], r["case"]): r for r in rows if r["kind"] == "ours"}
    header = "| shape | labels | " + " | ".join(FRAMEWORK_TITLES.get(f, f) for f in frameworks) + " |"
    lines = [header, "|---|---|" + "---:|" * len(frameworks)]
    shapes = [s for s in _shapes(rows) if s.family == "softmax"]
    for shape in shapes:
        for case in HARD_LABELS:
            cells = []
            for framework in frameworks:
                row = lookup.get((framework, shape.key, case))
                cells.append("" if row is None else f"{format_ratio(row['ratio'])}{_met(row)}")
            labels = "integer" if case == "poly1-int" else "one-hot"
            lines.append(f"| {shape.title} {shape.dims} | {labels} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shapes(rows: list[Row]) -> list[Any]:
    keys = {row["shape_key"] for row in rows}
    seen = {}
    for shapes in SHAPE_SETS.values():
        for shape in shapes:
            if shape.key in keys:
                seen.setdefault(shape.key, shape)
    return list(seen.values())


def misses(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["target"] is not None and r["ratio"] > r["target"]]


# --------------------------------------------------------------------------- plot
def write_plot(rows: list[Row], path: Path, frameworks: list[str]) -> None:
    """Time ratio of every one of our softmax losses against the number of logits, one panel per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    softmax_variants = [v for v in VARIANTS if v.family == "softmax"]
    fig, axes = plt.subplots(1, len(frameworks), figsize=(5.2 * len(frameworks), 4.4), sharey=True, squeeze=False)
    for ax, framework in zip(axes[0], frameworks, strict=True):
        for variant in softmax_variants:
            points = sorted(
                (r["elements"], r["ratio"], *r["ratio_iqr"])
                for r in rows
                if r["framework"] == framework and r["case"] == variant.key and r["kind"] == "ours"
            )
            if not points:
                continue
            x, y, low, high = zip(*points, strict=True)
            errors = [
                [max(v - lo, 0) for v, lo in zip(y, low, strict=True)],
                [max(hi - v, 0) for v, hi in zip(y, high, strict=True)],
            ]
            style = {"linewidth": 2.4, "zorder": 3} if variant.key in HARD_LABELS else {"linewidth": 1.1, "alpha": 0.8}
            ax.errorbar(x, y, yerr=errors, marker="o", markersize=4, capsize=2, label=variant.title, **style)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.05, color="red", linewidth=0.8, linestyle="--", label="1.05x target (hard labels)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.2g}x"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.2g}x"))
        plotted = {v.key for v in softmax_variants}
        sizes = sorted(
            {(r["elements"], r["shape_key"]) for r in rows if r["framework"] == framework and r["case"] in plotted}
        )
        ax.xaxis.set_major_locator(ticker.FixedLocator([n for n, _ in sizes]))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xticklabels([key for _, key in sizes], rotation=30, ha="right", fontsize=8)
        ax.set_title(FRAMEWORK_TITLES.get(framework, framework))
        ax.set_xlabel("problem, by number of logits (log scale)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("forward + backward time / native cross-entropy")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- page
Explain = Callable[[Row, Callable[..., Row | None]], str]


def write_page(
    rows: list[Row],
    metas: list[dict[str, Any]],
    info: dict[str, str],
    wall_s: float,
    page: Path,
    plot: Path,
    explanations: dict[tuple[str, str], Explain],
    notes: Callable[[list[Row], Callable[..., Row | None]], str],
) -> None:
    frameworks = [m["framework"] for m in metas]
    versions = {k: v for m in metas for k, v in m["versions"].items() if k != "python"}

    def find(framework: str, shape_key: str, case: str, kind: str = "ours") -> Row | None:
        for row in rows:
            if (row["framework"], row["shape_key"], row["case"], row["kind"]) == (framework, shape_key, case, kind):
                return row
        return None

    out = [PAGE_HEAD]
    out.append("## Machine and versions\n")
    out.append(
        f"- Measured on {info['date']}: {info['cpu']}, {info['cores']} cores, {info['os']}, Python {info['python']}.\n"
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in versions.items())}.\n"
        f"- The whole run took {wall_s / 60:.1f} minutes (`python benchmarks/run.py`).\n"
    )
    out.append("## Poly-1 with hard labels\n")
    out.append(
        "The promise: within **1.05x** of the framework's own cross-entropy. Time ratios, "
        "medians over interleaved rounds (the full tables below give the spread):\n"
    )
    out.append(summary_table(rows, frameworks) + "\n")
    image = Path(os.path.relpath(plot.resolve(), page.resolve().parent)).as_posix()
    out.append(f"![time ratio against problem size, per framework]({image})\n")
    out.append(
        "Each panel shows one framework; a line is one of our softmax losses across the four softmax "
        "shapes, plotted by the number of logits; error bars are the interquartile range of the "
        "per-round ratios. Both axes are logarithmic.\n"
    )
    missed = misses(rows)
    out.append("## What misses and why\n")
    if not missed:
        out.append("Every hard-label Poly-1 case met its target in this run.\n")
    for row in missed:
        explain = explanations.get((row["framework"], row["case"]))
        reason = explain(row, find) if explain else "No explanation is recorded for this case yet."
        out.append(
            f"- **{FRAMEWORK_TITLES.get(row['framework'], row['framework'])}, {VARIANTS_BY_KEY[row['case']].title}, "
            f"{row['shape_key']} {_shape_text(row)}: {format_ratio(row['ratio'])}** "
            f"(IQR {row['ratio_iqr'][0]:.2f}-{row['ratio_iqr'][1]:.2f}). {reason}\n"
        )
    out.append(notes(rows, find))
    out.append("## Full tables\n")
    out.append(
        "Ratios are ours (or a peer's, in *italics*) divided by the native loss of the same group; "
        "below 1.00x is faster or smaller than native. IQR is the spread of the per-round time "
        "ratios. Peers are compared with the same native loss as ours.\n"
    )
    for framework in frameworks:
        meta = next(m for m in metas if m["framework"] == framework)
        out.append(f"### {FRAMEWORK_TITLES.get(framework, framework)}\n")
        out.append(f"{meta['mode']} run, {meta['clock']} clock, {meta['seconds'] / 60:.1f} minutes.\n")
        out.append(framework_table(r for r in rows if r["framework"] == framework) + "\n")
    page.write_text("\n".join(out))


_FULL = PRESETS["full"]
PAGE_HEAD = f"""# Benchmarks

The claim this page backs: the polynomial term costs (almost) nothing over the
framework's own cross-entropy when the labels are hard, because then every member
of the family is an elementwise function of that cross-entropy
(`p_t = exp(-CE)`, see [the maths](maths.md)). Every number is a ratio measured
in one run against the same framework's native loss; the page is written by
`benchmarks/run.py` and nothing in its tables is typed by hand.

## How to run it

```bash
nox -s bench                                   # the full run: rewrites this page and its plot
python benchmarks/run.py --quick               # small shapes, few rounds (about a minute)
python benchmarks/run.py --dry-run             # tiny shapes, every loss once: does the code run?
python benchmarks/bench_torch.py --only large-vocab   # one framework, some groups
```

`nox -s bench` installs the project with `-c constraints.txt` plus the peers
(`polyloss==0.0.2` from PyPI, with `--no-deps`). Running `benchmarks/run.py` by
hand needs the same packages.

## Method

- **Groups.** For every shape and variant, a group holds the framework's native
  loss for the same kind of labels, our loss, and the peers that compute the same
  thing. Shapes (written with the classes on dimension 1; Keras and JAX get the
  same problem with the classes last, their convention):
{chr(10).join(f"  {s.title} `{s.dims}`;" for s in FULL_SHAPES)}
  the last one is images x anchors x classes of independent sigmoid decisions
  (RetinaNet's 49104 anchors of a 512 x 512 image, 80 classes), and fits in memory
  and time on this machine at its full size.
- **Variants.** {"; ".join(v.title for v in VARIANTS)}. Epsilon is 1.0, Poly-3
  uses epsilons (1.0, 0.5, 0.25), focal losses gamma 2 and alpha 0.25, smoothing 0.1.
  The native loss is the framework's cross-entropy for the same labels
  (`F.cross_entropy`, Keras `SparseCategoricalCrossentropy` /
  `CategoricalCrossentropy`, optax `softmax_cross_entropy[_with_integer_labels]`),
  or its binary cross-entropy with logits for the sigmoid variant.
- **Timing.** One step is a forward and backward pass with respect to float32 logits
  (a mean-reduced loss; JAX: `jit(value_and_grad)`; Keras: a graph-mode
  `tf.function` with a `GradientTape`). Every step is warmed up; then the
  contenders of a group run in interleaved rounds, in a fresh random order each
  round (seeded), each block primed with one untimed call when calls are short. A
  ratio is the **median over rounds of the per-round ratio** to the native loss, so
  a slow spell of the machine cancels out. Rounds follow a time budget per group
  (about {_FULL.budget_s:.0f} s of timed work, at least {_FULL.min_rounds} and at most
  {_FULL.max_rounds} rounds), so slow shapes get fewer rounds; each row shows its count.
- **Clock and threads.** Every framework runs in its own process on one compute
  thread (torch and TensorFlow by their thread settings; JAX by pinning the process
  to one core, as XLA sizes its thread pool from the cores it may use), and the
  clock is the process' CPU time (`time.process_time`): the machine is shared, and
  a second core or a wall clock mostly measures the neighbours. glibc is told to keep freed memory
  (`MALLOC_MMAP_MAX_=0`, a huge `MALLOC_TRIM_THRESHOLD_`), as a caching allocator
  would, so page faults do not land on whichever loss allocates first (at
  (2048, 32000) they were most of a step). These are the ratios of the computation
  on a CPU; they are not GPU numbers.
- **Peak memory**, each case in its own fresh process (two at a time, as nothing is
  timed then): PyTorch, the profiler's
  accounting of bytes held by tensors during one step; TensorFlow, the CPU
  allocator's peak above what it held before the step; JAX, XLA's compile-time
  accounting of the step (arguments + outputs + temporaries). Contenders that run
  the same loss on the same inputs share one measurement.
- **Peers** run in the same groups and are divided by the same native loss:
  optax `poly_loss_cross_entropy` (one-hot labels, built outside the timed step for
  the integer-label group) and `sigmoid_focal_loss`; Keras
  `CategoricalFocalCrossentropy` and `BinaryFocalCrossentropy`; the PyPI
  `polyloss` 0.0.2 package (PyTorch, `(N, C)` inputs only); and torchvision's
  sigmoid focal loss formula, written out in `benchmarks/bench_torch.py` because
  no CPU torchvision build matches the pinned torch. The PyTorch table also has a
  *reference* row: per-example `F.cross_entropy` plus `c - eps * expm1(-c)` in two
  lines, the cost of the identity itself without any library around it.
- **Noise.** Repeated full runs on this machine move single ratios by a few
  percent (see the IQR column); a difference of 0.02x between two rows is not
  evidence of anything.
"""
