"""Runs the (shape x variant) matrix of one framework: timing, peak memory, rows and a command line.

A framework module (``bench_torch``, ``bench_jax``, ``bench_keras``)
provides a ``Suite``: how to build a group of contenders (the native loss, ours,
peers) for one shape and variant, and how to measure one contender's peak
memory in the current process. Everything else (the loop over the matrix, the
memory subprocesses, the rows, the console table and the command line) is here,
once.

Peak memory: in a full run every contender is measured in its own fresh
subprocess (``Suite.memory_per_group`` lets a suite whose measurement is static,
like XLA's compile-time analysis, measure a whole group in one); two such
subprocesses run at a time, after all the timing is done. Contenders
that run the same loss on the same inputs (the native cross-entropy of several
groups) are measured once. A quick or dry run measures everything in one
subprocess per framework, one contender after another: the numbers are the
same accounting, only without the clean-process guarantee.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cases import ALL_SHAPES, VARIANTS_BY_KEY, Shape, Variant, groups
from harness import CLOCKS, Settings, format_ratio, reexec_if_needed, run_json_child, settings_for, time_group

NATIVE = "native"
MEMORY_WORKERS = 2  # memory subprocesses at a time (the machine has 2 cores)


@dataclass(frozen=True)
class Contender:
    """One loss of a group. ``step`` runs one forward + backward and waits for it."""

    name: str  # unique within the group: "native", "ours", "peer-..."
    label: str  # what the table shows, e.g. "F.cross_entropy"
    kind: str  # "native", "ours", "peer" or "reference"
    step: Callable[[], Any]
    memory_key: str = ""  # equal keys (same loss, same inputs) share one memory measurement


class Group:
    """The contenders of one (shape, variant); ``make_step(loss, labels_kind)`` binds a loss to the group's inputs."""

    def __init__(self, make_step: Callable[[Any, str], Callable[[], Any]] | None = None) -> None:
        self.contenders: list[Contender] = []
        self.make_step = make_step

    def add(self, name: str, label: str, kind: str, loss: Any, labels: str, memory_key: str = "") -> None:
        """Add ``loss`` applied to the logits and the ``labels`` kind of input ("index", "one-hot", ...)."""
        if self.make_step is None:
            raise RuntimeError("this group only records names; it cannot build steps")
        step = self.make_step(loss, labels)
        self.contenders.append(Contender(name, label, kind, step, memory_key or f"{name}:{label}"))

    def by_name(self, name: str) -> Contender:
        for contender in self.contenders:
            if contender.name == name:
                return contender
        raise KeyError(f"no contender {name!r} in the group: {[c.name for c in self.contenders]}")


class Suite:
    """What a framework module provides; subclasses fill in ``versions``, ``group`` and ``peak_bytes``."""

    def __init__(self, framework: str, script: str, *, memory_per_group: bool, channels_last: bool) -> None:
        self.framework = framework
        self.script = script  # the module file; memory children run it with --memory-child
        self.memory_per_group = memory_per_group  # one memory child per group instead of per contender
        self.channels_last = channels_last  # the class axis of (N, C, H, W) problems: last, or 1 (torch)

    def setup(self) -> None:
        """Fix threads and seeds; called once per process before anything is built."""

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def group(self, shape: Shape, variant: Variant) -> Group:
        raise NotImplementedError

    def peak_bytes(self, shape: Shape, variant: Variant, contender: Contender) -> int:
        """Peak bytes of one forward + backward of ``contender``, measured in this process."""
        raise NotImplementedError

    def run(self, quick: bool = False, dry: bool = False) -> list[dict[str, Any]]:
        """Benchmark rows for every shape and variant (``quick``: a smoke run; ``dry``: tiny shapes, no timing)."""
        return run_matrix(self, settings_for(quick=quick, dry=dry))


# --------------------------------------------------------------------------- memory
MemoryJob = tuple[str, str, str]  # (shape key, variant key, contender name)


def measure_jobs(suite: Suite, jobs: Sequence[MemoryJob]) -> list[int]:
    """Run in a memory child: peak bytes of every job, one after another, in this process."""
    suite.setup()
    out = []
    built: dict[tuple[str, str], Group] = {}
    for shape_key, variant_key, name in jobs:
        key = (shape_key, variant_key)
        shape, variant = ALL_SHAPES[shape_key], VARIANTS_BY_KEY[variant_key]
        if key not in built:
            built.clear()  # keep one group's inputs alive at a time
            built[key] = suite.group(shape, variant)
        out.append(suite.peak_bytes(shape, variant, built[key].by_name(name)))
    return out


def _memory(suite: Suite, plan: list[tuple[Shape, Variant, Group]], settings: Settings) -> dict[tuple[str, str], int]:
    """Peak bytes per (shape key, memory key), measured in subprocesses."""
    jobs: dict[tuple[str, str], MemoryJob] = {}
    for shape, variant, group in plan:
        for contender in group.contenders:
            jobs.setdefault((shape.key, contender.memory_key), (shape.key, variant.key, contender.name))
    keys = list(jobs)
    if settings.mode != "full":
        batches = [keys]
    elif suite.memory_per_group:
        batches = []
        for key in keys:
            if batches and jobs[batches[-1][0]][:2] == jobs[key][:2]:
                batches[-1].append(key)
            else:
                batches.append([key])
    else:
        batches = [[key] for key in keys]

    def measure(batch: list[tuple[str, str]]) -> list[int]:
        payload = json.dumps([jobs[key] for key in batch])
        values: list[int] = run_json_child(suite.script, ["--memory-child", settings.mode, payload])
        return values

    # Nothing is timed while memory is measured, so the children may share the cores.
    with ThreadPoolExecutor(max_workers=MEMORY_WORKERS) as pool:
        results = list(pool.map(measure, batches))
    return {
        key: value
        for batch, values in zip(batches, results, strict=True)
        for key, value in zip(batch, values, strict=True)
    }


# --------------------------------------------------------------------------- the matrix
def run_matrix(suite: Suite, settings: Settings, only: str | None = None) -> list[dict[str, Any]]:
    """Time every group of the run's shapes and attach each contender's memory ratio; one row per non-native loss."""
    suite.setup()
    plan: list[tuple[Shape, Variant, Group]] = []
    timings = {}
    for shape, variant in groups(settings.mode):
        if only and only not in f"{shape.key}/{variant.key}":
            continue
        group = suite.group(shape, variant)
        started = time.perf_counter()
        timing = time_group({c.name: c.step for c in group.contenders}, NATIVE, settings)
        timings[(shape.key, variant.key)] = timing
        # The steps hold the inputs; keep only names and labels once timed.
        names = Group()
        names.contenders = [Contender(c.name, c.label, c.kind, _gone, c.memory_key) for c in group.contenders]
        plan.append((shape, variant, names))
        del group
        print(
            f"  {suite.framework:<6} {shape.key:<20} {variant.key:<20} "
            + " ".join(f"{n}={t.ratio:.3f}" for n, t in timing.items() if n != NATIVE)
            + f"  ({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    peaks = _memory(suite, plan, settings)
    rows = []
    for shape, variant, group in plan:
        timing = timings[(shape.key, variant.key)]
        native = group.by_name(NATIVE)
        native_peak = peaks[(shape.key, native.memory_key)]
        for contender in group.contenders:
            if contender.kind == "native":
                continue
            measured = timing[contender.name]
            peak = peaks[(shape.key, contender.memory_key)]
            rows.append(
                {
                    "framework": suite.framework,
                    "case": variant.key,
                    "variant": variant.title,
                    "shape_key": shape.key,
                    "shape": list(shape.layout(suite.channels_last)),
                    "elements": shape.elements,
                    "contender": contender.label,
                    "kind": contender.kind,
                    "native": native.label,
                    "ours_s": measured.seconds,
                    "native_s": timing[NATIVE].seconds,
                    "ratio": measured.ratio,
                    "ratio_iqr": [measured.ratio_q1, measured.ratio_q3],
                    "mem_ratio": peak / native_peak if native_peak else None,
                    "peak_bytes": peak,
                    "native_peak_bytes": native_peak,
                    "rounds": measured.rounds,
                    "calls": measured.calls,
                    "target": variant.target if contender.kind == "ours" else None,
                    "mode": settings.mode,
                }
            )
    return rows


def _gone() -> None:
    raise RuntimeError("this contender's inputs were released after timing")


def meta(suite: Suite, settings: Settings, seconds: float) -> dict[str, Any]:
    return {
        "framework": suite.framework,
        "versions": {"python": platform.python_version(), **suite.versions()},
        "mode": settings.mode,
        "clock": settings.clock,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- console
def print_rows(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'framework':<9} {'shape':<20} {'variant':<20} {'loss':<44} {'time':>7} {'IQR':>11} {'memory':>7} "
        f"{'ms':>9} {'native ms':>9} {'rounds':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        q1, q3 = row["ratio_iqr"]
        flag = " MISS" if row["target"] and row["ratio"] > row["target"] else ""
        print(
            f"{row['framework']:<9} {row['shape_key']:<20} {row['case']:<20} {row['contender'][:44]:<44} "
            f"{format_ratio(row['ratio']):>7} {f'{q1:.2f}-{q3:.2f}':>11} {format_ratio(row['mem_ratio']):>7} "
            f"{row['ours_s'] * 1e3:9.2f} {row['native_s'] * 1e3:9.2f} {row['rounds']:>6}{flag}"
        )


# --------------------------------------------------------------------------- command line
def cli(suite: Suite, argv: Sequence[str] | None = None) -> int:
    """The command line every framework module shares (``--help`` lists it)."""
    parser = argparse.ArgumentParser(description=f"{suite.framework}: PolyLoss vs the native cross-entropy")
    parser.add_argument("--quick", action="store_true", help="small shapes, few rounds: a smoke run (noisy)")
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny shapes, every loss once: checks that the code runs"
    )
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="process", help="process CPU time (default) or wall")
    parser.add_argument("--only", help="run only groups whose 'shape/variant' contains this text")
    parser.add_argument("--json", type=Path, help="write {'rows': [...], 'meta': {...}} to this file")
    parser.add_argument("--memory-child", nargs=2, metavar=("MODE", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    reexec_if_needed(suite.script, sys.argv[1:] if argv is None else list(argv))
    if args.memory_child:
        _, payload = args.memory_child
        print(json.dumps(measure_jobs(suite, [tuple(job) for job in json.loads(payload)])))
        return 0
    settings = settings_for(quick=args.quick, dry=args.dry_run, clock=args.clock)
    started = time.perf_counter()
    rows = run_matrix(suite, settings, args.only)
    elapsed = time.perf_counter() - started
    print_rows(rows)
    print(f"{suite.framework}: {settings.mode} run, {settings.clock} clock, {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "meta": meta(suite, settings, elapsed)}, indent=1))
    return 0
