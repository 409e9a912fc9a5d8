"""Turns the rows of every framework into tables and the ratio plot.

A full run rewrites only the generated blocks of ``docs/benchmarks.md``
(``<!-- generated:NAME -->`` ... ``<!-- /generated -->``: the machine, the
hard-label summary, the list of misses and one full table per framework) and the
plot; the page's prose is written by hand around them.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cases import SHAPE_SETS, VARIANTS, VARIANTS_BY_KEY
from harness import format_ratio

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
MARKER = "<!-- generated:{name} -->"
END_MARKER = "<!-- /generated -->"


def machine_block(metas: list[dict[str, Any]], info: dict[str, str], wall_s: float) -> str:
    versions = {k: v for m in metas for k, v in m["versions"].items() if k != "python"}
    return (
        f"- Measured on {info['date']}: {info['cpu']}, {info['cores']} cores, {info['os']}, Python {info['python']}.\n"
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in versions.items())}.\n"
        f"- The whole run took {wall_s / 60:.1f} minutes (`python benchmarks/run.py`)."
    )


def misses_block(rows: list[Row]) -> str:
    """The rows that miss their target, one line each (the causes are written by hand next to the block)."""
    missed = misses(rows)
    if not missed:
        return "Every case with a target met it in this run."
    return "\n".join(
        f"- {FRAMEWORK_TITLES.get(r['framework'], r['framework'])}, {VARIANTS_BY_KEY[r['case']].title}, "
        f"{r['shape_key']} {_shape_text(r)}: **{format_ratio(r['ratio'])}** "
        f"(IQR {r['ratio_iqr'][0]:.2f}-{r['ratio_iqr'][1]:.2f}, target {format_ratio(r['target'])})"
        for r in missed
    )


def framework_block(rows: list[Row], meta: dict[str, Any]) -> str:
    framework = meta["framework"]
    return f"{meta['mode']} run, {meta['clock']} clock, {meta['seconds'] / 60:.1f} minutes.\n\n" + framework_table(
        r for r in rows if r["framework"] == framework
    )


def generated_blocks(
    rows: list[Row], metas: list[dict[str, Any]], info: dict[str, str], wall_s: float
) -> dict[str, str]:
    """Every generated block of the page, by marker name: the machine, the summary, the misses, one table each."""
    frameworks = [m["framework"] for m in metas]
    blocks = {
        "machine": machine_block(metas, info, wall_s),
        "summary": summary_table(rows, frameworks),
        "misses": misses_block(rows),
    }
    for meta in metas:
        blocks[meta["framework"]] = framework_block(rows, meta)
    return blocks


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the body of every ``<!-- generated:NAME -->`` ... ``<!-- /generated -->`` block replaced.

    Everything outside the blocks (the page's prose) is kept as written. A block
    name without its markers in ``text`` is an error, so no table is dropped silently.
    """
    for name, body in blocks.items():
        start = MARKER.format(name=name)
        begin = text.find(start)
        end = text.find(END_MARKER, begin + len(start)) if begin >= 0 else -1
        if begin < 0 or end < 0:
            raise ValueError(f"the page has no '{start}' ... '{END_MARKER}' block for the {name!r} table")
        text = text[: begin + len(start)] + "\n" + body.strip("\n") + "\n" + text[end:]
    return text


def write_tables(page: Path, rows: list[Row], metas: list[dict[str, Any]], info: dict[str, str], wall_s: float) -> None:
    """Rewrite the generated blocks of ``page`` (the tables of a run); its prose is left as written."""
    page.write_text(replace_blocks(page.read_text(), generated_blocks(rows, metas, info, wall_s)))
