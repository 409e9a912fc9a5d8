"""The PolyLoss benchmark for every framework: time and peak memory against the native cross-entropy.

Usage::

    python benchmarks/run.py              # full run (~25 min on 2 cores): prints the tables,
                                          # rewrites docs/benchmarks.md and docs/img/bench_ratio.png
    python benchmarks/run.py --quick      # small shapes, few rounds, every framework and peer (~1 min)
    python benchmarks/run.py --dry-run    # tiny shapes, every loss once: checks that the code runs

Each framework runs in its own subprocess (``bench_torch.py``,
``bench_keras.py``, ``bench_jax.py``), so their thread pools and
allocators never meet, with the environment of ``harness.child_env`` (one
compute thread, steady allocator). The method is described in the docstrings
of ``harness.py`` and ``matrix.py`` and on the generated page.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import ROOT, child_env, format_ratio
from report import FRAMEWORK_TITLES, machine, misses, write_plot, write_tables

HERE = Path(__file__).resolve().parent
MODULES = {"torch": "bench_torch.py", "keras": "bench_keras.py", "jax": "bench_jax.py"}
PAGE = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "bench_ratio.png"


def run_framework(name: str, flags: list[str]) -> dict[str, Any]:
    """One framework's rows and metadata, from its module run in a fresh subprocess."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{name}.json"
        command = [sys.executable, str(HERE / MODULES[name]), *flags, "--json", str(out)]
        print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        done = subprocess.run(command, env=child_env(), stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{MODULES[name]} failed with exit code {done.returncode}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def print_table(rows: list[dict[str, Any]], dry: bool) -> None:
    header = "| framework | shape | variant | loss | time | IQR | memory | ms (loss / native) | rounds |"
    print(header)
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        q1, q3 = row["ratio_iqr"]
        timing = "-" if dry else format_ratio(row["ratio"])
        spread = "-" if dry else f"{q1:.2f}-{q3:.2f}"
        ms = "-" if dry else f"{row['ours_s'] * 1e3:.3g} / {row['native_s'] * 1e3:.3g}"
        flag = " MISS" if not dry and row in misses([row]) else ""
        print(
            f"| {row['framework']} | {row['shape_key']} {tuple(row['shape'])} | {row['case']} | {row['contender']} "
            f"| {timing}{flag} | {spread} | {format_ratio(row['mem_ratio'])} | {ms} | {row['rounds']} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small shapes, few rounds: a smoke run (noisy numbers)")
    mode.add_argument("--dry-run", action="store_true", help="tiny shapes, every loss once, no timing claims")
    parser.add_argument(
        "--frameworks", default="torch,keras,jax", help="comma-separated subset of torch, keras, jax (default: all)"
    )
    parser.add_argument("--only", help="run only groups whose 'shape/variant' contains this text")
    parser.add_argument("--json", type=Path, help="also write every row and the run's metadata to this file")
    parser.add_argument(
        "--write-docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the docs page and plot (default: only for a full run of every framework)",
    )
    parser.add_argument("--page", type=Path, default=PAGE, help=f"the page to write (default {PAGE.relative_to(ROOT)})")
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"the plot to write (default {PLOT.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    frameworks = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    unknown = sorted(set(frameworks) - set(MODULES))
    if unknown:
        parser.error(f"unknown frameworks {unknown}; choose from {sorted(MODULES)}")
    flags = ["--quick"] if args.quick else ["--dry-run"] if args.dry_run else []
    if args.only:
        flags += ["--only", args.only]

    started = time.perf_counter()
    results = [run_framework(name, flags) for name in frameworks]
    wall_s = time.perf_counter() - started
    rows = [row for result in results for row in result["rows"]]
    metas = [result["meta"] for result in results]
    info = machine()

    print(f"\n{info['date']}, {info['cpu']}, {info['cores']} cores, {info['os']}, Python {info['python']}")
    for meta in metas:
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if k != "python")
        print(f"{FRAMEWORK_TITLES.get(meta['framework'], meta['framework'])}: {versions} ({meta['seconds']:.0f} s)")
    mode_name = "dry" if args.dry_run else "quick" if args.quick else "full"
    print(f"{mode_name} run, {len(rows)} rows, {wall_s:.0f} s in all\n")
    print_table(rows, dry=args.dry_run)
    if args.dry_run:
        print("\ndry run: every loss ran once at tiny sizes; the numbers above are not measurements")

    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "metas": metas, "machine": info, "seconds": wall_s}, indent=1))
    complete = mode_name == "full" and not args.only and set(frameworks) == set(MODULES)
    if args.write_docs if args.write_docs is not None else complete:
        if args.dry_run:
            parser.error("a dry run has no numbers to write")
        write_plot(rows, args.plot, [m["framework"] for m in metas])
        write_tables(args.page, rows, metas, info, wall_s)
        print(f"\nwrote {args.page} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
