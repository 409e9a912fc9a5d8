"""Language-model head in JAX: fused linear Poly-1 vs ``hidden @ W.T`` + optax integer cross-entropy.

Measures, for ``jax.value_and_grad`` (w.r.t. hidden and weight) of the masked mean loss:

- compiled temporary memory (``memory_analysis().temp_size_in_bytes``) of both programs;
- the time ratio fused / unfused: process CPU time, interleaved rounds, median of the
  per-round ratios, one compute thread.

A third program weighs every token differently (``loss * weights``): its cotangent is not the
same for every token, so the fused backward adds the recomputed correction of the weight
gradient (``polyloss_jax.linear``); it is timed against the same unfused mean.

Run ``python benchmarks/bench_lm_jax.py`` (N=1024 tokens, D=512, V=128,256, 10% of the
tokens masked, float32) or ``--dry-run`` for tiny sizes. Prints a Markdown table.

``--products`` times only the matrix products each program runs, at the shapes it runs
them (the unfused program: three full-size products; the fused one: three per chunk of
tokens, the weight gradient block by block), and prints their ratio: the floor the fused
time cannot go below however little else it does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# One compute thread, before JAX starts.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyloss_jax import linear, linear_poly1_cross_entropy_with_integer_labels


def make_inputs(n: int, d: int, v: int, masked: float, seed: int = 0) -> tuple[jax.Array, ...]:
    """Hidden states, an output projection, labels with ``masked`` of them -100, and the token mask."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(n, d)).astype(np.float32)
    weight = (rng.normal(size=(v, d)) / np.sqrt(d)).astype(np.float32)
    labels = rng.integers(0, v, size=n).astype(np.int32)
    labels[rng.random(n) < masked] = -100
    return jnp.asarray(hidden), jnp.asarray(weight), jnp.asarray(labels), jnp.asarray(labels >= 0)


def programs(chunk_size: int | None, epsilon: float) -> dict[str, object]:
    """The two jitted value-and-grad programs (same masked-mean reduction)."""

    def fused(h: jax.Array, w: jax.Array, y: jax.Array, keep: jax.Array) -> jax.Array:
        loss = linear_poly1_cross_entropy_with_integer_labels(
            h, w, y, epsilon=epsilon, where=keep, chunk_size=chunk_size
        )
        return loss.sum() / keep.sum()

    def unfused(h: jax.Array, w: jax.Array, y: jax.Array, keep: jax.Array) -> jax.Array:
        ce = optax.losses.softmax_cross_entropy_with_integer_labels(h @ w.T, y)
        return jnp.where(keep, ce, 0.0).sum() / keep.sum()

    def weighted(h: jax.Array, w: jax.Array, y: jax.Array, keep: jax.Array) -> jax.Array:
        # A different weight per token: the backward recomputes the weight gradient's correction.
        loss = linear_poly1_cross_entropy_with_integer_labels(
            h, w, y, epsilon=epsilon, where=keep, chunk_size=chunk_size
        )
        return (loss * jnp.linspace(0.5, 1.5, loss.shape[0])).sum() / keep.sum()

    named = (("fused", fused), ("unfused", unfused), ("fused, per-token weights", weighted))
    return {name: jax.jit(jax.value_and_grad(fn, argnums=(0, 1))) for name, fn in named}


def temp_bytes(program: object, args: tuple[jax.Array, ...]) -> int:
    return int(program.lower(*args).compile().memory_analysis().temp_size_in_bytes)  # type: ignore[attr-defined]


def cpu_seconds(program: object, args: tuple[jax.Array, ...]) -> float:
    start = time.process_time()
    jax.block_until_ready(program(*args))  # type: ignore[operator]
    return time.process_time() - start


def product_seconds(n: int, d: int, v: int, rounds: int) -> dict[str, float]:
    """Median CPU seconds of the matrix products alone: ``unfused`` (three full-size) and ``fused``
    (per chunk of ``CHUNK_LOGITS // v`` tokens: the logits, the hidden gradient, and the weight
    gradient block by block of ``VOCAB_BLOCK`` entries, times the chunks)."""
    rows, block = min(n, max(1, linear.CHUNK_LOGITS // v)), min(linear.VOCAB_BLOCK, v)
    chunks, blocks = -(-n // rows), v / block
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape).astype(np.float32))

    h, w, z = arr(n, d), arr(v, d), arr(n, v)
    h_c, z_c, z_b = arr(rows, d), arr(rows, v), arr(rows, block)
    full = [(lambda a, b: a @ b.T, h, w), (lambda a, b: a @ b, z, w), (lambda a, b: a.T @ b, z, h)]
    chunk = [(lambda a, b: a @ b.T, h_c, w), (lambda a, b: a @ b, z_c, w)]

    def seconds(fn: object, a: jax.Array, b: jax.Array) -> float:
        program = jax.jit(fn)  # type: ignore[arg-type]
        jax.block_until_ready(program(a, b))
        times = []
        for _ in range(rounds):
            start = time.process_time()
            jax.block_until_ready(program(a, b))
            times.append(time.process_time() - start)
        return statistics.median(times)

    unfused = sum(seconds(*p) for p in full)
    per_chunk = sum(seconds(*p) for p in chunk) + blocks * seconds(lambda a, b: a.T @ b, z_b, h_c)
    return {"unfused": unfused, "fused": chunks * per_chunk}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, one round (checks the script runs)")
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=128_256)
    parser.add_argument("--masked", type=float, default=0.1, help="fraction of tokens masked (label -100)")
    parser.add_argument("--chunk-size", type=int, default=None, help="tokens per tile (default: the library's)")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--products", action="store_true", help="time the matrix products alone (the floor)")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.tokens, args.dim, args.vocab, args.rounds = 64, 16, 1000, 1
    if args.products:
        got = product_seconds(args.tokens, args.dim, args.vocab, args.rounds)
        print(f"N={args.tokens} D={args.dim} V={args.vocab} float32, one thread, matrix products only (CPU s)")
        print(
            f"unfused 3 products: {got['unfused']:.3f} s; fused 3 per chunk: {got['fused']:.3f} s; "
            f"ratio {got['fused'] / got['unfused']:.3f}x"
        )
        return 0

    inputs = make_inputs(args.tokens, args.dim, args.vocab, args.masked)
    progs = programs(args.chunk_size, args.epsilon)
    temps = {name: temp_bytes(p, inputs) for name, p in progs.items()}
    for p in progs.values():  # compile and warm up
        jax.block_until_ready(p(*inputs))  # type: ignore[operator]
    seconds: dict[str, list[float]] = {name: [] for name in progs}
    for r in range(args.rounds):
        order = list(progs) if r % 2 == 0 else list(progs)[::-1]
        for name in order:
            seconds[name].append(cpu_seconds(progs[name], inputs))
    ratios = {name: [a / b for a, b in zip(seconds[name], seconds["unfused"], strict=True)] for name in progs}

    print(
        f"N={args.tokens} D={args.dim} V={args.vocab} masked={args.masked:.0%} float32, one thread, "
        f"{args.rounds} interleaved rounds (process CPU time, medians), jax {jax.__version__}"
    )
    print("| program | temp bytes | CPU s |")
    print("|---|---|---|")
    for name in progs:
        print(f"| {name} | {temps[name] / 1e6:.1f} MB | {statistics.median(seconds[name]):.3f} |")
    for name in ("fused", "fused, per-token weights"):
        print(
            f"{name} / unfused: temp {temps[name] / temps['unfused']:.4f} (1/{temps['unfused'] / temps[name]:.1f}), "
            f"time {statistics.median(ratios[name]):.3f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
