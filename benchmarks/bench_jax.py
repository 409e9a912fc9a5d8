"""Speed and memory of polyloss_jax relative to optax's own cross-entropy.

What is timed: one jitted ``jax.value_and_grad`` step of the mean loss with
respect to the logits (forward and backward), ``block_until_ready`` after every
call. Every implementation is compiled and warmed up first; then each round
runs all implementations back to back (the order rotates from round to round)
and records the mean time per call. A row's ``ratio`` is the median over rounds
of ``ours / native`` measured in the same round, so machine-wide slowdowns (other
processes on the cores) cancel instead of biasing one side.

Rows, for each shape ``(N, C)`` in ``(4096, 1000)`` and ``(65536, 10)``:

- ``poly1 integer labels``: :func:`polyloss_jax.poly1_cross_entropy_with_integer_labels`
  against :func:`optax.losses.softmax_cross_entropy_with_integer_labels`.
- ``optax poly_loss_cross_entropy one-hot (peer)``: optax's own PolyLoss, which
  needs one-hot labels (built once, outside the timed step), against the same
  integer-label cross-entropy.
- ``poly1 one-hot labels``: :func:`polyloss_jax.poly1_cross_entropy` against
  :func:`optax.losses.softmax_cross_entropy` on the same one-hot labels.

``mem_ratio`` compares XLA's own accounting of the compiled step (argument +
output + temporary buffers, from ``Compiled.memory_analysis()``), computed for
each shape in a fresh subprocess. Process RSS was tried and rejected: the
allocator's caching made it vary by 2-3x between identical runs.

Usage::

    python benchmarks/bench_jax.py            # 25 rounds
    python benchmarks/bench_jax.py --quick    # 7 rounds (smoke run)

``run(quick)`` returns the rows as dicts ``{framework, case, shape, ours_s,
native_s, ratio, mem_ratio}`` for an aggregate benchmark to import.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyloss_jax import poly1_cross_entropy, poly1_cross_entropy_with_integer_labels

SHAPES: tuple[tuple[int, int], ...] = ((4096, 1000), (65536, 10))
EPSILON = 1.0

# name -> (loss of (logits, integer labels, one-hot labels), which labels it reads)
LOSSES: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "optax_ce_int": lambda z, y, q: optax.losses.softmax_cross_entropy_with_integer_labels(z, y),
    "poly1_int": lambda z, y, q: poly1_cross_entropy_with_integer_labels(z, y, epsilon=EPSILON),
    "optax_poly_onehot": lambda z, y, q: optax.losses.poly_loss_cross_entropy(z, q, epsilon=EPSILON),
    "optax_ce_onehot": lambda z, y, q: optax.losses.softmax_cross_entropy(z, q),
    "poly1_onehot": lambda z, y, q: poly1_cross_entropy(z, q, epsilon=EPSILON),
}
USES_ONE_HOT = {"optax_poly_onehot", "optax_ce_onehot", "poly1_onehot"}

# (case, ours, native)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("poly1 integer labels vs optax integer CE", "poly1_int", "optax_ce_int"),
    ("optax poly_loss_cross_entropy one-hot (peer) vs optax integer CE", "optax_poly_onehot", "optax_ce_int"),
    ("poly1 one-hot labels vs optax softmax_cross_entropy", "poly1_onehot", "optax_ce_onehot"),
)


def _inputs(shape: tuple[int, int], seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    n, c = shape
    logits = jnp.asarray(rng.normal(scale=2.0, size=shape), jnp.float32)
    labels = jnp.asarray(rng.integers(0, c, size=n), jnp.int32)
    return logits, labels, jax.nn.one_hot(labels, c, dtype=jnp.float32)


def _step(name: str) -> Callable[..., Any]:
    loss = LOSSES[name]

    def mean_loss(z: jax.Array, y: jax.Array, q: jax.Array) -> jax.Array:
        return jnp.mean(loss(z, y, q))

    return jax.jit(jax.value_and_grad(mean_loss))


def _args(name: str, z: jax.Array, y: jax.Array, q: jax.Array) -> tuple[jax.Array, ...]:
    # Pass only what the loss reads, so no implementation is charged for the other's labels.
    dummy = jnp.zeros((), jnp.float32)
    return (z, y, dummy) if name not in USES_ONE_HOT else (z, jnp.zeros((), jnp.int32), q)


def time_shape(shape: tuple[int, int], rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    """Per-round mean seconds per call of every implementation, measured interleaved."""
    z, y, q = _inputs(shape)
    names = list(LOSSES)
    steps = {n: _step(n) for n in names}
    args = {n: _args(n, z, y, q) for n in names}
    # Calls per round: about 0.15 s of work per implementation (at least 2 calls).
    per_call = {}
    for n in names:
        for _ in range(warmup):
            jax.block_until_ready(steps[n](*args[n]))
        start = time.perf_counter()
        jax.block_until_ready(steps[n](*args[n]))
        per_call[n] = time.perf_counter() - start
    calls = max(2, int(0.15 / max(min(per_call.values()), 1e-6)))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            start = time.perf_counter()
            for _ in range(calls):
                jax.block_until_ready(steps[n](*args[n]))
            times[n].append((time.perf_counter() - start) / calls)
    return times


def memory_bytes(shape: tuple[int, int]) -> dict[str, int]:
    """XLA's argument + output + temporary bytes of every compiled step (run in a subprocess)."""
    z, y, q = _inputs(shape)
    out = {}
    for n in LOSSES:
        compiled = _step(n).lower(*_args(n, z, y, q)).compile()
        stats = compiled.memory_analysis()
        out[n] = int(
            stats.argument_size_in_bytes
            + stats.output_size_in_bytes
            + stats.temp_size_in_bytes
            - stats.alias_size_in_bytes
        )
    return out


def _memory_in_subprocess(shape: tuple[int, int]) -> dict[str, int]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    result = subprocess.run(
        [sys.executable, __file__, "--memory-for", f"{shape[0]}x{shape[1]}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {k: int(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Benchmark rows ``{framework, case, shape, ours_s, native_s, ratio, mem_ratio}``.

    ``ours_s`` and ``native_s`` are medians of the per-round mean seconds per call,
    ``ratio`` the median of the per-round ratios (not the ratio of the medians).
    """
    rounds = 7 if quick else 25
    rows = []
    for shape in SHAPES:
        times = time_shape(shape, rounds)
        memory = _memory_in_subprocess(shape)
        for case, ours, native in ROWS:
            ratios = [a / b for a, b in zip(times[ours], times[native], strict=True)]
            rows.append(
                {
                    "framework": "jax",
                    "case": case,
                    "shape": list(shape),
                    "ours_s": statistics.median(times[ours]),
                    "native_s": statistics.median(times[native]),
                    "ratio": statistics.median(ratios),
                    "mem_ratio": memory[ours] / memory[native],
                    # Spread of the per-round ratios, to judge the noise.
                    "ratio_iqr": _iqr(ratios),
                    "rounds": rounds,
                }
            )
        speedup = [a / b for a, b in zip(times["optax_poly_onehot"], times["poly1_int"], strict=True)]
        rows.append(
            {
                "framework": "jax",
                "case": "speed-up of poly1 integer labels over optax poly_loss_cross_entropy one-hot",
                "shape": list(shape),
                "ours_s": statistics.median(times["poly1_int"]),
                "native_s": statistics.median(times["optax_poly_onehot"]),
                "ratio": statistics.median(speedup),
                "mem_ratio": memory["optax_poly_onehot"] / memory["poly1_int"],
                "ratio_iqr": _iqr(speedup),
                "rounds": rounds,
            }
        )
    return rows


def _iqr(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return (q[0], q[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="polyloss_jax vs optax: jitted value_and_grad time and memory")
    parser.add_argument("--quick", action="store_true", help="7 rounds instead of 25")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--memory-for", help=argparse.SUPPRESS)  # internal: NxC, run in a subprocess
    args = parser.parse_args(argv)
    if args.memory_for:
        n, c = (int(v) for v in args.memory_for.split("x"))
        print(json.dumps(memory_bytes((n, c))))
        return
    rows = run(quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"jax {jax.__version__}, optax {optax.__version__}, device {jax.devices()[0].device_kind}")
    print(f"{'shape':>12}  {'ours ms':>8}  {'native ms':>9}  {'ratio':>6}  {'IQR':>13}  {'mem':>5}  case")
    for row in rows:
        low, high = row["ratio_iqr"]
        print(
            f"{'x'.join(map(str, row['shape'])):>12}  {row['ours_s'] * 1e3:8.2f}  {row['native_s'] * 1e3:9.2f}  "
            f"{row['ratio']:6.3f}  [{low:5.3f},{high:5.3f}]  {row['mem_ratio']:5.2f}  {row['case']}"
        )


if __name__ == "__main__":
    main()
