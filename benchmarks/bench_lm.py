"""Language-model-scale benchmark: fused linear + Poly-1 against ``hidden @ W.T`` + ``poly1_cross_entropy``.

Usage: ``python benchmarks/bench_lm.py`` (N=1024 tokens, D=512, V=128,256, 10% of the
labels ignored, float32, one thread) or ``--dry-run`` (tiny sizes, seconds).

Methods, each one forward + backward producing ``dh`` and ``dW``:

* ``unfused``: ``poly1_cross_entropy(hidden @ weight.T, target)``;
* ``fused``: ``linear_poly1_cross_entropy(hidden, weight, target)``;
* ``cce``: ``cut_cross_entropy.linear_cross_entropy(..., impl="torch_compile")``
  (plain cross-entropy; a peer, run only if the package imports, and not in the dry run).

Memory: every method runs in a fresh subprocess. After one warm-up step (which
also compiles ``cce``) and freeing its results, the process resets its peak
resident set (Linux ``/proc/self/clear_refs`` = 5), notes its resident size,
runs one step and reads the peak (``VmHWM``). What the loss adds is that peak
minus the resident size before the step minus ``size(dh) + size(dW)``, the
gradients any method must return. The workers run with glibc's mmap threshold
fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``), so every tensor larger than that
is mapped when allocated and unmapped when freed, and the resident peak tracks
the live tensors.

Time: one subprocess runs every method in interleaved rounds and reports
median process CPU time (``time.process_time``) as a ratio to ``unfused``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

FULL = {"n": 1024, "d": 512, "v": 128256, "rounds": 5}
DRY = {"n": 64, "d": 16, "v": 1000, "rounds": 1}
METHODS = ("unfused", "fused", "cce")
ROOT = Path(__file__).resolve().parents[1]


def _status() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(v) * 1024 for k, v in re.findall(r"(VmHWM|VmRSS):\s+(\d+) kB", text)}


def _problem(n: int, d: int, v: int):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=g).mul_(0.5)
    weight = torch.randn(v, d, generator=g).mul_(0.02)
    target = torch.randint(0, v, (n,), generator=g)
    target[torch.rand(n, generator=g) < 0.1] = -100
    return hidden, weight, target


def _step_fn(method: str):  # type: ignore[no-untyped-def]
    import torch

    from polyloss_torch import linear_poly1_cross_entropy, poly1_cross_entropy

    if method == "unfused":
        return lambda h, w, t: poly1_cross_entropy(h @ w.T, t)
    if method == "fused":
        return lambda h, w, t: linear_poly1_cross_entropy(h, w, t)
    from cut_cross_entropy import linear_cross_entropy

    del torch
    return lambda h, w, t: linear_cross_entropy(h, w, t, impl="torch_compile")


def _run_step(step, hidden, weight, target):  # type: ignore[no-untyped-def]
    h = hidden.detach().requires_grad_()
    w = weight.detach().requires_grad_()
    step(h, w, target).backward()
    return h.grad, w.grad


def worker_memory(method: str, n: int, d: int, v: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    hidden, weight, target = _problem(n, d, v)
    step = _step_fn(method)
    grads = _run_step(step, hidden, weight, target)  # warm-up (and compilation for cce)
    del grads
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status()["VmRSS"]
    dh, dw = _run_step(step, hidden, weight, target)
    peak = _status()["VmHWM"]
    grads_bytes = dh.numel() * dh.element_size() + dw.numel() * dw.element_size()
    return {"added_mb": (peak - before - grads_bytes) / 2**20, "grads_mb": grads_bytes / 2**20}


def worker_time(methods: list[str], n: int, d: int, v: int, rounds: int) -> dict[str, list[float]]:
    import torch

    torch.set_num_threads(1)
    hidden, weight, target = _problem(n, d, v)
    steps = {m: _step_fn(m) for m in methods}
    for m in methods:
        _run_step(steps[m], hidden, weight, target)  # warm-up
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            gc.collect()
            start = time.process_time()
            _run_step(steps[m], hidden, weight, target)
            times[m].append(time.process_time() - start)
    return times


def _env(peer_path: str | None) -> dict[str, str]:
    # A fixed mmap threshold: glibc then maps every block over 128 KiB and unmaps it when freed, so the
    # resident size follows the live tensors (with its default, adaptive threshold, freed blocks up to
    # 32 MiB stay resident in the heap and blur the peak).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    paths = [str(ROOT / "src"), *([peer_path] if peer_path else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _cce_available(peer_path: str | None) -> bool:
    """Whether cut-cross-entropy imports (checked in a subprocess: importing triton can abort a process)."""
    check = [sys.executable, "-c", "import cut_cross_entropy"]
    return subprocess.run(check, env=_env(peer_path), capture_output=True, check=False, timeout=600).returncode == 0


def _subprocess(args: list[str], peer_path: str | None) -> dict:  # type: ignore[type-arg]
    env = _env(peer_path)
    out = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, one round")
    parser.add_argument(
        "--peer-path",
        help="a directory holding cut-cross-entropy and triton (pip install --target DIR), "
        "put on the workers' PYTHONPATH so the peer need not live in the project's environment",
    )
    parser.add_argument("--worker", choices=("memory", "time"), help=argparse.SUPPRESS)
    parser.add_argument("--methods", default=",".join(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = DRY if args.dry_run else FULL
    n, d, v, rounds = size["n"], size["d"], size["v"], size["rounds"]
    # The dry run skips the peer: compiling it takes a minute even at tiny sizes.
    methods = args.methods.split(",")
    if args.worker is None and "cce" in methods and (args.dry_run or not _cce_available(args.peer_path)):
        methods.remove("cce")
    if args.worker == "memory":
        print(json.dumps(worker_memory(methods[0], n, d, v)))
        return
    if args.worker == "time":
        print(json.dumps(worker_time(methods, n, d, v, rounds)))
        return
    dry = ["--dry-run"] if args.dry_run else []
    print(f"N={n} D={d} V={v}, 10% ignored, float32, one thread; methods: {', '.join(methods)}")
    if "cce" not in methods and not args.dry_run:
        print("cut-cross-entropy is not importable here: its row is skipped")
    memory = {m: _subprocess(["--worker", "memory", "--methods", m, *dry], args.peer_path) for m in methods}
    times = _subprocess(["--worker", "time", "--methods", ",".join(methods), *dry], args.peer_path)
    base = statistics.median(times["unfused"])
    print(f"{'method':<10}{'added MB':>10}{'vs unfused':>12}{'median s':>10}{'time ratio':>12}")
    for m in methods:
        added = memory[m]["added_mb"]
        med = statistics.median(times[m])
        share = added / memory["unfused"]["added_mb"] if memory["unfused"]["added_mb"] > 0 else float("nan")
        print(f"{m:<10}{added:>10.1f}{share:>12.3f}{med:>10.3f}{med / base:>12.3f}")
    print(f"(dh + dW = {memory['unfused']['grads_mb']:.1f} MB, not counted)")


if __name__ == "__main__":
    main()
