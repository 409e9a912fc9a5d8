"""Speed and peak memory of ``poly1_cross_entropy`` relative to ``F.cross_entropy`` on CPU.

Usage::

    python benchmarks/bench_torch.py [--quick] [--threads N] [--clock wall|thread]
                                     [--steady-allocator] [--json PATH]

What is measured, per case (classification ``(4096, 1000)``, segmentation
``(8, 21, 128, 128)``, many small examples ``(65536, 10)``; float32 logits,
class-index targets, ``reduction="mean"``):

* time: one forward + backward of the loss with respect to the logits. The
  losses run in interleaved rounds (a random order every round, each block
  preceded by one untimed call of the same loss); each round times a block of
  calls of each, and the reported ``ratio`` is the median over rounds of
  ``ours / native`` in that round. ``ours_s`` and ``native_s`` are the median
  seconds per call. Comparing within a round cancels most of the drift of a
  shared machine. Every loss is warmed up first.
* memory: the peak of bytes held by tensors during one forward + backward,
  each (case, loss) in its own fresh subprocess, read from the PyTorch
  profiler's allocator accounting (``profile_memory=True``: every CPU tensor
  allocation and free, with the running total). The process' maximum resident
  set size is not used: it includes the interpreter and the torch libraries
  (hundreds of MB) and the C allocator keeps freed pages, so it cannot resolve
  the few-percent differences that matter here. ``mem_ratio`` is ours / native.

Page faults: glibc returns large freed blocks to the kernel, so a 16 MB
buffer may cost ~4000 page faults (milliseconds of kernel time) on one call and
nothing on the next, depending on where earlier buffers landed; which loss pays
it is luck of the layout and moves ratios by 10-30 %. ``--steady-allocator``
reruns the script with glibc's mmap and trim thresholds raised
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) so freed memory is
reused, as a caching allocator would, and the ratios compare computation only.

A third contender, ``plain``, is the textbook composition
``F.cross_entropy(..., reduction="none")`` followed by ``c + eps * (1 - exp(-c))``
(with ``expm1``): its ratio (``plain_ratio``) shows what the custom
``autograd.Function`` in ``polyloss_torch._target_ce`` buys.

``run(quick)`` returns one dict per case with the keys ``framework``,
``case``, ``shape``, ``ours_s``, ``native_s``, ``ratio`` and ``mem_ratio`` (and a
few more) so an aggregate benchmark can import it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

try:
    from polyloss_torch import poly1_cross_entropy
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from polyloss_torch import poly1_cross_entropy

CASES: dict[str, tuple[int, ...]] = {
    "classification": (4096, 1000),
    "segmentation": (8, 21, 128, 128),
    "many-examples": (65536, 10),
}
EPSILON = 1.0


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator).requires_grad_(True)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    return logits, target


def _losses() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    return {
        "native": lambda z, t: F.cross_entropy(z, t),
        "ours": lambda z, t: poly1_cross_entropy(z, t, epsilon=EPSILON),
        "plain": _plain_poly1,
    }


def _plain_poly1(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Poly-1 as the obvious composition of torch operations (no custom autograd.Function)."""
    ce = F.cross_entropy(z, t, reduction="none")
    return (ce - EPSILON * torch.expm1(-ce)).mean()


def _step(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z: torch.Tensor, t: torch.Tensor) -> None:
    z.grad = None
    loss_fn(z, t).backward()


STEADY_ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


def _time_block(fn: Callable[[], None], calls: int, clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls


def time_case(
    shape: tuple[int, ...], rounds: int, calls: int, warmup: int = 5, clock: str = "wall"
) -> dict[str, float]:
    """Median per-call seconds of each loss and the medians of per-round ratios to native."""
    z, t = _inputs(shape)
    losses = _losses()
    steps = {name: (lambda fn=fn: _step(fn, z, t)) for name, fn in losses.items()}
    timer = CLOCKS[clock]
    for step in steps.values():
        _time_block(step, warmup, timer)
    per_round: dict[str, list[float]] = {name: [] for name in steps}
    ratios, plain_ratios = [], []
    names = list(steps)
    shuffler = random.Random(0)
    for _ in range(rounds):
        # A fresh random order every round, and one untimed call right before each timed
        # block: every loss starts its block from the state its own previous call left
        # (caches, freed buffers), whatever ran before it. A fixed alternating order
        # would let the first and last losses repeat across rounds and favour them.
        order = shuffler.sample(names, len(names))
        seconds = {}
        for name in order:
            steps[name]()
            seconds[name] = _time_block(steps[name], calls, timer)
        for name, value in seconds.items():
            per_round[name].append(value)
        ratios.append(seconds["ours"] / seconds["native"])
        plain_ratios.append(seconds["plain"] / seconds["native"])
    return {
        "ours_s": statistics.median(per_round["ours"]),
        "native_s": statistics.median(per_round["native"]),
        "ratio": statistics.median(ratios),
        "plain_ratio": statistics.median(plain_ratios),
        "ratio_q1": statistics.quantiles(ratios, n=4)[0],
        "ratio_q3": statistics.quantiles(ratios, n=4)[2],
    }


def peak_tensor_bytes(case: str, which: str) -> int:
    """Peak bytes of CPU tensors allocated during one forward + backward (run in a fresh process)."""
    from torch.profiler import ProfilerActivity, profile

    z, t = _inputs(CASES[case])
    loss_fn = _losses()[which]
    small_z, small_t = _inputs((4, CASES[case][1], *([2] * (len(CASES[case]) - 2))))
    _step(loss_fn, small_z, small_t)  # load kernels and lazy state outside the measurement
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(loss_fn, z, t)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as handle:
            events = json.load(handle)["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not memory:
        raise RuntimeError("the profiler recorded no memory events")
    baseline = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in memory) - baseline


def _memory_in_subprocess(case: str, which: str, threads: int | None) -> int:
    command = [sys.executable, __file__, "--memory-child", case, which]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess for {case}/{which} failed:\n{done.stderr}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])


def run(quick: bool, threads: int | None = None, clock: str = "wall") -> list[dict]:
    """Benchmark every case; ``quick`` uses fewer rounds (for a smoke run, not for numbers to quote).

    ``clock="thread"`` times with ``time.thread_time`` (CPU seconds of the
    calling thread, blind to time spent preempted by other processes); it needs
    ``threads=1`` so that all of torch's work runs on that thread.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    if threads:
        torch.set_num_threads(threads)
    if clock == "thread" and torch.get_num_threads() != 1:
        raise ValueError(f"clock='thread' needs threads=1, torch uses {torch.get_num_threads()} threads")
    rounds, target_seconds = (9, 0.02) if quick else (41, 0.08)
    rows = []
    for case, shape in CASES.items():
        z, t = _inputs(shape)
        probe = _time_block(lambda z=z, t=t: _step(_losses()["native"], z, t), 2)
        calls = max(1, round(target_seconds / probe))
        timing = time_case(shape, rounds=rounds, calls=calls, clock=clock)
        ours_mem = _memory_in_subprocess(case, "ours", threads)
        native_mem = _memory_in_subprocess(case, "native", threads)
        rows.append(
            {
                "framework": "torch",
                "case": case,
                "shape": shape,
                "ours_s": timing["ours_s"],
                "native_s": timing["native_s"],
                "ratio": timing["ratio"],
                "ratio_iqr": (timing["ratio_q1"], timing["ratio_q3"]),
                "mem_ratio": ours_mem / native_mem,
                "plain_ratio": timing["plain_ratio"],
                "plain_mem_ratio": _memory_in_subprocess(case, "plain", threads) / native_mem,
                "ours_peak_bytes": ours_mem,
                "native_peak_bytes": native_mem,
                "rounds": rounds,
                "clock": clock,
                "allocator": "steady" if _steady_allocator() else "default",
                "threads": torch.get_num_threads(),
                "calls_per_round": calls,
            }
        )
    return rows


def _steady_allocator() -> bool:
    return all(os.environ.get(key) == value for key, value in STEADY_ALLOCATOR_ENV.items())


def _print_table(rows: list[dict]) -> None:
    clock = rows[0]["clock"] if rows else "wall"
    allocator = rows[0]["allocator"] if rows else "default"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {clock} clock, {allocator} allocator, "
        f"epsilon={EPSILON}, float32, CPU, forward + backward"
    )
    header = (
        f"{'case':<15} {'shape':<18} {'ours ms':>9} {'CE ms':>9} {'time ratio':>11} {'IQR':>13} "
        f"{'mem ratio':>10} {'plain time':>11} {'plain mem':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        q1, q3 = row["ratio_iqr"]
        print(
            f"{row['case']:<15} {row['shape']!s:<18} {row['ours_s'] * 1e3:>9.3f} {row['native_s'] * 1e3:>9.3f} "
            f"{row['ratio']:>11.3f} {f'{q1:.3f}-{q3:.3f}':>13} {row['mem_ratio']:>10.3f} "
            f"{row['plain_ratio']:>11.3f} {row['plain_mem_ratio']:>10.3f}"
        )
    print("ratios are ours / F.cross_entropy (median of per-round ratios); 'plain' = CE(reduction='none') + expm1 term")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="wall (default) or thread CPU time (needs --threads 1)"
    )
    parser.add_argument(
        "--steady-allocator",
        action="store_true",
        help="rerun with glibc's mmap/trim thresholds raised, so page faults do not decide the ratios",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steady_allocator and not _steady_allocator():
        # glibc reads these variables at start-up only, hence a fresh process.
        command = [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)]
        raise SystemExit(subprocess.call(command, env={**os.environ, **STEADY_ALLOCATOR_ENV}))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        case, which = args.memory_child
        print(json.dumps({"peak_bytes": peak_tensor_bytes(case, which)}))
        return
    rows = run(args.quick, args.threads, args.clock)
    _print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
