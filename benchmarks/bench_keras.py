"""Forward + backward cost of the Keras PolyLosses relative to Keras' own losses (TensorFlow backend).

Usage::

    python benchmarks/bench_keras.py [--quick] [--xla] [--json PATH]

Each case times one ``tf.function`` step that computes the loss from logits and
its gradient with respect to the logits, for our loss and for the Keras loss it
extends, on the same inputs. Rounds interleave the two (alternating which goes
first); the reported ratio is the median of the per-round ratios, after a
warm-up. The peak-memory ratio of a case compares the peak bytes the TensorFlow CPU
allocator holds during a warm step (above what it held before the step), each
side measured in its own fresh subprocess.

``run(quick)`` returns the rows as dicts with the keys ``framework``, ``case``,
``shape``, ``ours_s``, ``native_s``, ``ratio`` and ``mem_ratio`` so an
aggregate benchmark can import this module.
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

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHAPES: tuple[tuple[int, int], ...] = ((4096, 1000), (65536, 10))
# case name -> (our loss, Keras' loss, label kind); every loss takes logits.
CASES: dict[str, tuple[str, str, str]] = {
    "poly1-sparse": ("Poly1SparseCategoricalCrossentropy", "SparseCategoricalCrossentropy", "index"),
    "poly1-categorical": ("Poly1CategoricalCrossentropy", "CategoricalCrossentropy", "one-hot"),
    "poly1-categorical-focal": ("Poly1CategoricalFocalCrossentropy", "CategoricalFocalCrossentropy", "one-hot"),
}


def _require_tensorflow() -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"bench_keras measures the TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}")


def _loss(name: str) -> Any:
    import keras

    import polyloss_tf

    module = polyloss_tf if name.startswith("Poly") else keras.losses
    return getattr(module, name)(from_logits=True)


def _inputs(shape: tuple[int, int], labels: str) -> tuple[Any, Any]:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(scale=2.0, size=shape).astype(np.float32))
    index = rng.integers(0, shape[1], size=shape[0])
    if labels == "index":
        return logits, tf.constant(index)
    return logits, tf.one_hot(index, shape[1], dtype=tf.float32)


def _step(loss: Any, mode: str = "graph") -> Callable[[Any, Any], Any]:
    import tensorflow as tf

    @tf.function(jit_compile=mode == "xla")
    def step(logits: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(labels, logits)
        return value, tape.gradient(value, logits)

    return step


def _call(step: Callable[[Any, Any], Any], logits: Any, labels: Any) -> None:
    value, _ = step(logits, labels)
    value.numpy()  # both outputs come from one call; this waits for it


def time_case(
    case: str, shape: tuple[int, int], *, rounds: int, calls: int, warmup: int = 3, mode: str = "graph"
) -> dict[str, Any]:
    """Median per-call seconds of both steps and the median of the per-round ratios."""
    ours_name, native_name, labels = CASES[case]
    logits, target = _inputs(shape, labels)
    steps = {"ours": _step(_loss(ours_name), mode), "native": _step(_loss(native_name), mode)}
    for step in steps.values():
        for _ in range(warmup):
            _call(step, logits, target)
    per_call: dict[str, list[float]] = {"ours": [], "native": []}
    ratios = []
    for r in range(rounds):
        order = ("ours", "native") if r % 2 == 0 else ("native", "ours")
        elapsed = {}
        for key in order:
            start = time.perf_counter()
            for _ in range(calls):
                _call(steps[key], logits, target)
            elapsed[key] = (time.perf_counter() - start) / calls
            per_call[key].append(elapsed[key])
        ratios.append(elapsed["ours"] / elapsed["native"])
    return {
        "ours_s": statistics.median(per_call["ours"]),
        "native_s": statistics.median(per_call["native"]),
        "ratio": statistics.median(ratios),
        "ratio_q1_q3": tuple(statistics.quantiles(ratios, n=4)[::2]) if len(ratios) > 1 else (ratios[0], ratios[0]),
    }


# --------------------------------------------------------------------------- memory
def _peak_probe(case: str, shape: tuple[int, int], which: str, mode: str) -> int:
    """Bytes the TensorFlow CPU allocator holds at the peak of a warm step, above what it held before."""
    _require_tensorflow()
    import tensorflow as tf

    ours_name, native_name, labels = CASES[case]
    logits, target = _inputs(shape, labels)
    step = _step(_loss(ours_name if which == "ours" else native_name), mode)
    for _ in range(3):
        _call(step, logits, target)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    for _ in range(3):
        _call(step, logits, target)
    return int(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)


def peak_memory_ratio(case: str, shape: tuple[int, int], mode: str = "graph") -> float:
    peaks = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    for which in ("ours", "native"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-probe", case, f"{shape[0]}x{shape[1]}", which, mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        peaks[which] = int(out.stdout.strip().splitlines()[-1])
    return peaks["ours"] / max(peaks["native"], 1)


# --------------------------------------------------------------------------- driver
def run(quick: bool = False, *, modes: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Benchmark every case at both shapes.

    ``quick`` uses fewer rounds (a smoke run). ``modes`` picks ``"graph"``
    (``tf.function``, the reference setting) and/or ``"xla"``
    (``tf.function(jit_compile=True)``, what ``model.fit`` uses on TensorFlow when
    it can); by default both for a full run and only ``"graph"`` for a quick one.
    """
    _require_tensorflow()
    rounds, calls = (6, 2) if quick else (30, 5)
    if modes is None:
        modes = ("graph",) if quick else ("graph", "xla")
    rows = []
    for mode in modes:
        for shape in SHAPES:
            for case, (ours_name, native_name, _) in CASES.items():
                timing = time_case(case, shape, rounds=rounds, calls=calls, mode=mode)
                rows.append(
                    {
                        "framework": "keras-tensorflow" + ("-xla" if mode == "xla" else ""),
                        "case": f"{case} ({ours_name} / {native_name})",
                        "shape": f"{shape[0]}x{shape[1]}",
                        "ours_s": timing["ours_s"],
                        "native_s": timing["native_s"],
                        "ratio": timing["ratio"],
                        "ratio_iqr": timing["ratio_q1_q3"],
                        "mem_ratio": peak_memory_ratio(case, shape, mode),
                    }
                )
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'mode':<22} {'case':<90} {'shape':>10} {'ours ms':>9} {'keras ms':>9} {'ratio':>6} {'IQR':>13} {'mem':>5}")
    for row in rows:
        q1, q3 = row["ratio_iqr"]
        print(
            f"{row['framework']:<22} {row['case']:<90} {row['shape']:>10} {row['ours_s'] * 1e3:9.2f} {row['native_s'] * 1e3:9.2f} "
            f"{row['ratio']:6.3f} {q1:6.3f}-{q3:6.3f} {row['mem_ratio']:5.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run, noisy)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--xla", action="store_true", help="also time tf.function(jit_compile=True) in a quick run")
    parser.add_argument("--memory-probe", nargs=4, metavar=("CASE", "SHAPE", "WHICH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        case, shape, which, mode = args.memory_probe
        n, c = (int(v) for v in shape.split("x"))
        print(_peak_probe(case, (n, c), which, mode))
        return 0
    rows = run(quick=args.quick, modes=("graph", "xla") if args.xla else None)
    _print(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
