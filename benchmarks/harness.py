"""The timing loop, the memory subprocess and the process set-up shared by every benchmark module.

One loop times all three frameworks, so a ratio means the same thing in every
row of the table:

* every contender of a group (the native cross-entropy, ours, the peers) is
  warmed up, then timed in interleaved rounds: each round visits the contenders
  in a fresh random order (seeded), primes each with one untimed call and then
  times a block of calls of it;
* a contender's ``ratio`` is the median over rounds of its block time divided
  by the native loss' block time *in the same round*, so a slow spell of the
  machine cancels instead of landing on one side;
* the clock is the CPU time of the whole process (``time.process_time``): with
  every framework held to one compute thread (JAX: to one CPU, ``pin_to_one_cpu``)
  it counts the loss' own work and not the time the operating system gave to
  other processes; ``--clock wall`` switches to ``time.perf_counter``.

Rounds follow a time budget per group (``rounds_for``), so a case of 0.5 s
per call gets fewer rounds than one of 5 ms and a full run has a predictable
length; every row reports its rounds and the spread (IQR) of its per-round ratios.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# glibc serves big blocks with mmap and returns them to the kernel on free, so the next call
# page-faults them back in: milliseconds (for the (2048, 32000) logits, most of a step) that land on
# whichever loss happens to allocate first. No mmap and no trimming make malloc reuse freed memory,
# as a caching allocator does, so the ratios compare computation. (The mmap threshold alone is not
# enough: glibc caps it at 32 MiB.)
STEADY_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}
# One compute thread for every framework: on a 2-core machine shared with other work, a second
# thread mostly measures the neighbours. torch and TensorFlow are also set in code by their modules;
# XLA's CPU client no longer honours its flags, so bench_jax pins itself to one CPU (pin_to_one_cpu).
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "KERAS_BACKEND": "tensorflow",
}
CLOCKS: dict[str, Callable[[], float]] = {"process": time.process_time, "wall": time.perf_counter}


@dataclass(frozen=True)
class Settings:
    """How hard to measure: a full run, a quick smoke run, or a dry run (one call each, no numbers)."""

    mode: str  # "full", "quick" or "dry"
    budget_s: float  # timed seconds per group, all contenders together
    block_s: float  # target seconds of one timed block
    min_rounds: int
    max_rounds: int
    warmup: int
    clock: str = "process"

    @property
    def dry(self) -> bool:
        return self.mode == "dry"


PRESETS: dict[str, Settings] = {
    "full": Settings("full", budget_s=12.0, block_s=0.05, min_rounds=7, max_rounds=61, warmup=3),
    "quick": Settings("quick", budget_s=0.6, block_s=0.01, min_rounds=3, max_rounds=9, warmup=1),
    "dry": Settings("dry", budget_s=0.0, block_s=0.0, min_rounds=1, max_rounds=1, warmup=0),
}


def settings_for(quick: bool = False, dry: bool = False, clock: str = "process") -> Settings:
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    preset = PRESETS["dry" if dry else "quick" if quick else "full"]
    return Settings(**{**preset.__dict__, "clock": clock})


@dataclass(frozen=True)
class Timing:
    """One contender of a group: median seconds per call and its ratio to the group's native loss."""

    seconds: float
    ratio: float
    ratio_q1: float
    ratio_q3: float
    rounds: int
    calls: int


def _block(step: Callable[[], Any], calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        step()
    return (clock() - start) / calls


def rounds_for(per_call: Mapping[str, float], calls: int, settings: Settings) -> int:
    """Rounds that fit the group's budget: each round runs every contender ``calls`` times, plus the primer."""
    per_round = sum(seconds * (calls + (seconds < settings.block_s)) for seconds in per_call.values())
    fitting = int(settings.budget_s / max(per_round, 1e-9))
    return max(settings.min_rounds, min(settings.max_rounds, fitting))


def time_group(
    steps: Mapping[str, Callable[[], Any]], native: str, settings: Settings, seed: int = 0
) -> dict[str, Timing]:
    """Time every step of a group against ``steps[native]``; see the module docstring for the method.

    A step is a zero-argument callable that runs one forward + backward and
    waits for the result. In a dry run every step runs once and the timings are
    placeholders (ratio 1.0) that prove only that the code runs.
    """
    if native not in steps:
        raise KeyError(f"the group has no native step {native!r}: {sorted(steps)}")
    clock = CLOCKS[settings.clock]
    if settings.dry:
        for step in steps.values():
            step()
        return {name: Timing(0.0, 1.0, 1.0, 1.0, rounds=0, calls=1) for name in steps}
    for step in steps.values():
        for _ in range(settings.warmup):
            step()
    # One probe call each sizes the blocks (the same number of calls for every contender, set by
    # the fastest, so blocks are short enough to interleave finely) and the number of rounds.
    names = list(steps)
    per_call = {name: _block(step, 1, clock) for name, step in steps.items()}
    calls = max(1, round(settings.block_s / max(min(per_call.values()), 1e-9)))
    rounds = rounds_for(per_call, calls, settings)
    shuffler = random.Random(seed)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    # A short call is primed with one untimed call, so that its block starts from the state (caches,
    # freed buffers) its own loss left behind, whatever ran before; a long one does not need it.
    primed = {name: per_call[name] < settings.block_s for name in names}
    for _ in range(rounds):
        for name in shuffler.sample(names, len(names)):
            if primed[name]:
                steps[name]()
            seconds[name].append(_block(steps[name], calls, clock))
    out = {}
    for name in names:
        ratios = [ours / base for ours, base in zip(seconds[name], seconds[native], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        out[name] = Timing(statistics.median(seconds[name]), statistics.median(ratios), q1, q3, rounds, calls)
    return out


# --------------------------------------------------------------------------- subprocesses
def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmark subprocess: steady allocator, one thread, ``src`` importable."""
    env = {**os.environ, **STEADY_ALLOCATOR_ENV, **SINGLE_THREAD_ENV, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return env


def pin_to_one_cpu() -> None:
    """Run this process, and every thread it starts from now on, on one CPU (the last one it may use).

    For JAX: XLA's CPU client ignores its old single-thread flags and sizes its
    thread pool from the CPUs the process may use, so ``bench_jax`` calls this
    before importing jax. torch and TensorFlow are set to one thread instead and
    stay free to move to the less busy core of a shared machine.
    """
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def cpus_for(argv: Sequence[str]) -> None:
    """``pin_to_one_cpu`` for a timing run; every CPU for a memory child (one may run beside another)."""
    if "--memory-child" in argv:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    else:
        pin_to_one_cpu()


def steady_process() -> bool:
    """Whether this process started with the steady allocator and one-thread settings."""
    wanted = {**STEADY_ALLOCATOR_ENV, **SINGLE_THREAD_ENV}
    return all(os.environ.get(key) == value for key, value in wanted.items())


def reexec_if_needed(script: str, argv: Sequence[str]) -> None:
    """Restart ``script`` with ``child_env`` unless already running under it (glibc reads it at start-up)."""
    if steady_process():
        return
    command = [sys.executable, script, *argv]
    raise SystemExit(subprocess.call(command, env=child_env()))


def run_json_child(script: str, args: Sequence[str], timeout_s: float = 900.0) -> Any:
    """Run ``python script *args`` in a fresh process and parse the JSON on its last stdout line."""
    done = subprocess.run(
        [sys.executable, script, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_src_importable() -> None:
    """Make ``src`` importable when a module runs from a checkout without ``pip install``."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
