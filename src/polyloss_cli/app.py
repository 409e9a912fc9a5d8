"""The typer application behind the ``polyloss`` command.

Commands: ``demo`` (train and compare losses), ``plot`` (loss and gradient
against ``p_t``) and ``coeffs`` (series coefficients of a spec). Argument
problems, including specs that :class:`polyloss_core.PolySpec` rejects, end in a
usage error (exit code 2) with a one-line message.
"""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from polyloss_core import PolySpec

__all__ = ["app"]

app = typer.Typer(
    name="polyloss",
    help="PolyLoss (Leng et al., ICLR 2022) from the command line: demo training, figures and coefficients.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 200},
)

#: Top-level module -> the extra that installs it, for the commands' one-line "install this" errors.
EXTRA_OF = {"sklearn": "cli", "matplotlib": "cli", "scipy": "cli"}


def _require(command: str, modules: tuple[str, ...]) -> None:
    """Exit with a usage error naming the extra to install when one of ``modules`` is missing."""
    from .__main__ import installed

    missing = [name for name in modules if not installed(name)]
    if missing:
        extras = sorted({EXTRA_OF.get(name, "cli") for name in missing})
        raise typer.BadParameter(
            f"'polyloss {command}' needs {', '.join(missing)}, which is not installed; install the "
            f'{" and ".join(repr(e) for e in extras)} extra (in a clone: pip install ".[{",".join(extras)}]")',
            param_hint="'command'",
        )


def _show_version(value: bool) -> None:
    if value:
        from polyloss_cli import __version__

        typer.echo(f"polyloss {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """PolyLoss (Leng et al., ICLR 2022) from the command line: demo training, figures and coefficients.

    demo trains a small network with several losses over several seeds and compares them; plot draws
    loss and gradient against p_t; coeffs prints a spec's series coefficients.
    """


DEFAULT_EPSILONS = "-1,1,2"
#: Order in which the demo looks for an installed framework.
AUTO_ORDER = ("torch", "jax", "tf")


class BackendChoice(StrEnum):
    """Values of ``polyloss demo --backend``."""

    torch = "torch"
    tf = "tf"
    jax = "jax"
    all = "all"


def _console() -> Console:
    """A stdout console; 120 columns when the output is not a terminal (files, pipes, tests)."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120
    return console


def _parse_floats(value: str, option: str) -> list[float]:
    """Parse a comma-separated list of finite numbers, raising a usage error that names ``option``."""
    items = [item.strip() for item in value.split(",")]
    if not value.strip() or any(not item for item in items):
        raise typer.BadParameter(f"expected comma-separated numbers such as '-1,1,2', got {value!r}", param_hint=option)
    numbers = []
    for item in items:
        try:
            number = float(item)
        except ValueError:
            raise typer.BadParameter(f"{item!r} is not a number (in {value!r})", param_hint=option) from None
        if not np.isfinite(number):
            raise typer.BadParameter(f"{item!r} is not a finite number", param_hint=option)
        numbers.append(number)
    return list(dict.fromkeys(numbers))


def _spec_error(exc: Exception, options: str) -> typer.BadParameter:
    """A usage error for a spec that PolySpec rejects: the options involved and PolySpec's reason."""
    return typer.BadParameter(f"not a valid PolySpec: {exc}", param_hint=options)


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------- coeffs
@app.command()
def coeffs(
    epsilon: Annotated[
        list[float] | None,
        typer.Option(
            "--epsilon",
            "-e",
            help="eps_j of the spec; repeat for Poly-N (--epsilon 1 --epsilon 0.5). Default: 1.0 (Poly-1).",
        ),
    ] = None,
    gamma: Annotated[float, typer.Option("--gamma", "-g", help="Focal exponent (0 = cross-entropy based).")] = 0.0,
    terms: Annotated[int, typer.Option("--terms", "-n", min=1, max=10_000, help="Number of coefficients to list.")] = 8,
    json_only: Annotated[bool, typer.Option("--json", help="Print only the spec as JSON.")] = False,
) -> None:
    """Print a spec's series coefficients alpha_j and the spec as JSON.

    l(p) = sum_j alpha_j (1 - p)^(j + gamma) with alpha_j = 1/j + eps_j.
    """
    epsilons = tuple(epsilon) if epsilon else (1.0,)
    if not all(np.isfinite(epsilons)):
        raise typer.BadParameter(f"every value must be finite, got {list(epsilons)}", param_hint="'--epsilon'")
    try:
        spec = PolySpec(epsilons=epsilons, gamma=gamma)
    except (ValueError, TypeError) as exc:
        raise _spec_error(exc, "'--epsilon' / '--gamma'") from None
    document = json.dumps(spec.to_dict(), indent=2)
    if json_only:
        typer.echo(document)
        return
    alphas = spec.coefficients(terms)
    table = Table(title=f"PolyLoss coefficients: eps = {list(spec.epsilons)}, gamma = {spec.gamma:g}")
    table.add_column("j", justify="right")
    table.add_column("power j+gamma", justify="right")
    table.add_column("eps_j", justify="right")
    table.add_column("alpha_j", justify="right")
    table.add_column("CE 1/j", justify="right")
    for j, alpha in enumerate(alphas, start=1):
        eps_j = spec.epsilons[j - 1] if j <= len(spec.epsilons) else 0.0
        table.add_row(str(j), f"{j + spec.gamma:g}", f"{eps_j:.6g}", f"{alpha:.6g}", f"{1.0 / j:.6g}")
    console = _console()
    console.print(table)
    console.print("l(p) = sum_j alpha_j (1 - p)^(j + gamma); alpha_j = 1/j for j > N. Spec as JSON:")
    typer.echo(document)


# --------------------------------------------------------------------------- plot
@app.command()
def plot(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Image file to write (.png, .pdf or .svg); missing parent directories are created."
        ),
    ] = Path("polyloss-curves.png"),
    epsilons: Annotated[
        str, typer.Option("--epsilons", help="Comma-separated Poly-1 epsilons to draw.")
    ] = DEFAULT_EPSILONS,
    gamma: Annotated[float, typer.Option("--gamma", help="Focal exponent; 0 leaves out the focal curves.")] = 2.0,
) -> None:
    """Draw loss and dl/dp_t against p_t for CE, focal and Poly-1.

    Two panels, loss and gradient, for cross-entropy, Poly-1 at each --epsilons value and, unless
    --gamma is 0, focal and Poly-1 focal; also prints the values at p_t = 0.1, 0.5 and 0.9.
    """
    _require("plot", ("matplotlib",))
    from .curves import curve_specs, loss_and_gradient, save_figure

    values = _parse_floats(epsilons, "'--epsilons'")
    suffix = output.suffix.lower()
    if suffix not in {".png", ".pdf", ".svg"}:
        raise typer.BadParameter(f"{str(output)!r} must end in .png, .pdf or .svg", param_hint="'--output'")
    if output.is_dir():
        raise typer.BadParameter(f"{str(output)!r} is a directory; give a file name", param_hint="'--output'")
    try:
        curves = curve_specs(values, gamma)
    except (ValueError, TypeError) as exc:
        raise _spec_error(exc, "'--epsilons' / '--gamma'") from None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_figure(curves, output)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {str(output)!r}: {exc.strerror or exc}", param_hint="'--output'"
        ) from None

    probes = np.array([0.1, 0.5, 0.9])
    table = Table(title="Loss l(p_t) and gradient dl/dp_t at three values of p_t")
    table.add_column("curve")
    for p in probes:
        table.add_column(f"l({p:g})", justify="right")
    for p in probes:
        table.add_column(f"dl/dp({p:g})", justify="right")
    for curve in curves:
        loss, grad = loss_and_gradient(probes, curve.spec)
        table.add_row(curve.name, *(_fmt(v) for v in loss), *(_fmt(v) for v in grad))
    console = _console()
    console.print(table)
    console.print(f"wrote {output}")


# --------------------------------------------------------------------------- demo
def _pick_backends(choice: BackendChoice | None) -> list[str]:
    from .runners import BACKENDS, available

    if choice is None:
        for name in AUTO_ORDER:
            if available(name):
                return [name]
        raise typer.BadParameter(
            "no deep-learning framework found to default to; install torch, jax (with optax) or keras "
            '(in a clone: pip install ".[torch]", ".[jax]" or ".[tf]")',
            param_hint="'--backend'",
        )
    names = list(AUTO_ORDER) if choice is BackendChoice.all else [choice.value]
    for name in names:
        if not available(name):
            info = BACKENDS[name]
            raise typer.BadParameter(
                f"backend {name!r} needs {' and '.join(info.requires)}, which is not installed; install the "
                f'{info.extra!r} extra (in a clone: pip install ".[{info.extra}]")',
                param_hint="'--backend'",
            )
    return names


DEFAULT_SEEDS = 5
DEFAULT_LEARNING_RATES = "0.1,0.3,0.9"
DEFAULT_OUTPUT = Path("polyloss-demo")


def _usable_directory(path: Path, option: str) -> None:
    """Create ``path`` (and its parents) and check that a file can be written in it, or raise a usage error."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{str(path)!r} exists and is not a directory", param_hint=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".polyloss-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise typer.BadParameter(f"cannot write into {str(path)!r}: {exc.strerror or exc}", param_hint=option) from None


def _interval_text(value: Any, digits: int = 3, signed: bool = False) -> str:
    """``mean ± half-width`` of an :class:`~polyloss_cli.demo.Interval` (just the mean with one seed)."""
    sign = "+" if signed else ""
    text = f"{value.mean:{sign}.{digits}f}"
    return text if not np.isfinite(value.half_width) else f"{text}±{value.half_width:.{digits}f}"


@app.command(epilog="Writes results.json and learning_curves.png into --output (default: ./polyloss-demo).")
def demo(
    backend: Annotated[
        BackendChoice | None,
        typer.Option(
            "--backend",
            "-b",
            help="Framework to train with; 'all' trains torch, jax and Keras and compares "
            "them. Default: the first installed of torch, jax, tf.",
        ),
    ] = None,
    epsilons: Annotated[
        str, typer.Option("--epsilons", help="Comma-separated Poly-1 epsilons, one loss each (e.g. '-1,0,1,2,4').")
    ] = DEFAULT_EPSILONS,
    gamma: Annotated[float, typer.Option("--gamma", help="Focal exponent of the focal and Poly-1 focal losses.")] = 2.0,
    focal_epsilon: Annotated[float, typer.Option("--focal-epsilon", help="Epsilon of the Poly-1 focal loss.")] = 1.0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds", min=1, max=1000, help="Number of seeds (data split, initial weights, batch order) per run."
        ),
    ] = DEFAULT_SEEDS,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed; the runs use seed .. seed + seeds - 1.")] = 0,
    lr: Annotated[
        str,
        typer.Option(
            "--lr",
            help="Comma-separated grid of plain-SGD learning rates; each loss gets the one with the best mean "
            "validation balanced accuracy. One value: no choice.",
        ),
    ] = DEFAULT_LEARNING_RATES,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=10_000, help="Passes over the training split.")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Minibatch size.")] = 32,
    imbalance: Annotated[
        float, typer.Option("--imbalance", min=1.0, help="Largest / smallest training class size.")
    ] = 20.0,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Directory for results.json and learning_curves.png; created if missing. "
            "Default: polyloss-demo in the current directory.",
        ),
    ] = DEFAULT_OUTPUT,
) -> None:
    """Compare CE, focal, Poly-1 and Poly-1 focal over several seeds.

    Trains one small MLP on long-tailed handwritten digits (bundled with scikit-learn) once per
    seed, learning rate and loss.
    Per seed every loss starts from the same NumPy-generated weights and sees the
    same minibatches in the same order (plain SGD), whatever the loss or
    framework. Each loss gets its learning rate from the --lr grid on a
    validation split held out from the training data; the test split is only
    reported: mean and 95 % interval over seeds, and the paired difference to CE.
    """
    _require("demo", ("sklearn", "matplotlib", "scipy"))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .data import make_problem
    from .demo import choose_learning_rates, compare, demo_losses, parity, run_all, save_learning_curves, save_results
    from .runners import BACKENDS

    values = _parse_floats(epsilons, "'--epsilons'")
    rates = _parse_floats(lr, "'--lr'")
    if not all(rate > 0 for rate in rates):
        raise typer.BadParameter(f"every learning rate must be > 0, got {lr!r}", param_hint="'--lr'")
    if not (np.isfinite(imbalance) and imbalance >= 1):
        raise typer.BadParameter(f"must be a finite number >= 1, got {imbalance:g}", param_hint="'--imbalance'")
    try:
        losses = demo_losses(values, gamma, focal_epsilon)
    except (ValueError, TypeError) as exc:
        raise _spec_error(exc, "'--epsilons' / '--gamma' / '--focal-epsilon'") from None
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{str(output)!r} exists and is not a directory", param_hint="'--output'")
    names = _pick_backends(backend)
    _usable_directory(output, "'--output'")

    seed_list = list(range(seed, seed + seeds))
    problems = {
        s: make_problem(seed=s, epochs=epochs, batch_size=batch_size, learning_rate=rates[0], imbalance=imbalance)
        for s in seed_list
    }
    problem = problems[seed]
    console = _console()
    counts = np.bincount(problem.y_train, minlength=problem.num_classes)
    held = np.bincount(problem.y_val, minlength=problem.num_classes)
    console.print(
        f"data: bundled digits; long-tailed training split: {len(problem.y_train)} images to train on "
        f"(per class {counts.tolist()}) + {len(problem.y_val)} held out for validation "
        f"(per class {held.tolist()}); {len(problem.y_test)} balanced test images"
    )
    console.print(
        f"model: MLP {problem.x_train.shape[1]}-{problem.weights[0].shape[1]}-{problem.num_classes}, plain SGD, "
        f"batch {batch_size}, {epochs} epochs; learning rates {', '.join(f'{r:g}' for r in rates)}; "
        f"seeds {seed_list[0]}..{seed_list[-1]} (one split, init and batch order each); "
        f"backends: {', '.join(BACKENDS[n].label for n in names)}"
    )

    started = time.perf_counter()
    progress = Progress(
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("starting", total=len(names) * len(seed_list) * len(rates) * len(losses) * epochs)

        def on_start(backend_name: str, description: str) -> None:
            progress.update(task, description=f"{BACKENDS[backend_name].label}: {description}")

        def on_epoch(backend_name: str, loss_name: str, epoch: int, value: float) -> None:
            progress.update(task, advance=1)

        try:
            with np.errstate(all="ignore"):
                runs = run_all(names, losses, list(problems.items()), rates, on_epoch=on_epoch, on_start=on_start)
        except ImportError as exc:
            progress.stop()
            typer.echo(
                f"Error: could not import what --backend {backend.value if backend else 'auto'} needs: {exc}", err=True
            )
            raise typer.Exit(1) from None
    total = time.perf_counter() - started

    choices = choose_learning_rates(runs, problems)
    comparisons = compare(runs, problems, choices)
    several = len(names) > 1
    table = Table(
        title=f"Test metrics over {len(seed_list)} seeds, mean±95 % interval, each loss at the lr with the best "
        "mean validation balanced accuracy (val); Δ: paired difference to CE, same seeds; tail: 5 rarest classes"
    )
    if several:
        table.add_column("backend")
    table.add_column("loss")
    for column in ("lr", "val", "test bal acc", "tail acc", "NLL", "ECE", "Δ bal acc", "verdict"):
        table.add_column(column, justify="left" if column == "verdict" else "right", no_wrap=True)
    for index, c in enumerate(comparisons):
        last_of_backend = index + 1 < len(comparisons) and comparisons[index + 1].backend != c.backend
        cells = [BACKENDS[c.backend].label] if several else []
        if c.lr is None:
            cells += [c.loss, "-", "-", "-", "-", "-", "-", "-", c.verdict()]
        else:
            choice = next(ch for ch in choices if (ch.backend, ch.loss) == (c.backend, c.loss))
            delta = c.difference.get("balanced_accuracy")
            cells += [
                c.loss,
                f"{c.lr:g}",
                f"{choice.validation[c.lr]:.3f}",
                _interval_text(c.metrics["balanced_accuracy"]),
                _interval_text(c.metrics["tail_accuracy"]),
                _interval_text(c.metrics["nll"]),
                f"{c.metrics['ece'].mean:.3f}",
                "" if delta is None else _interval_text(delta, signed=True),
                c.verdict(),
            ]
        table.add_row(*cells, end_section=last_of_backend)
    console.print(table)
    for line in _verdict_lines(comparisons, choices, several):
        console.print(line)

    rows = parity(runs)
    if rows:
        agreement = Table(
            title="Cross-framework agreement of the per-epoch training loss, every seed and learning rate "
            f"(reference: {BACKENDS[rows[0].reference].label})"
        )
        for column in ("loss", "backend"):
            agreement.add_column(column)
        agreement.add_column("max abs diff", justify="right")
        agreement.add_column("max rel diff", justify="right")
        for row in rows:
            agreement.add_row(row.loss, BACKENDS[row.backend].label, f"{row.max_abs:.2e}", f"{row.max_rel:.2e}")
        console.print(agreement)
        worst = max(rows, key=lambda r: r.max_rel)
        console.print(
            f"largest relative difference: {worst.max_rel:.2e} ({worst.loss}, {BACKENDS[worst.backend].label} "
            f"vs {BACKENDS[worst.reference].label})"
        )

    config: dict[str, Any] = {
        "backends": names,
        "epsilons": values,
        "gamma": gamma,
        "focal_epsilon": focal_epsilon,
        "seeds": seed_list,
        "learning_rates": rates,
        "epochs": epochs,
        "batch_size": batch_size,
        "imbalance": imbalance,
        "total_seconds": total,
    }
    if "tf" in names:
        import keras

        config["keras_backend"] = keras.backend.backend()
    try:
        save_results(output / "results.json", config, problems, runs, choices, comparisons)
        save_learning_curves(output / "learning_curves.png", comparisons, runs)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write into {str(output)!r}: {exc.strerror or exc}", param_hint="'--output'"
        ) from None
    console.print(
        f"trained {len(runs)} runs in {total:.1f} s; wrote {output / 'results.json'} and "
        f"{output / 'learning_curves.png'}"
    )


def _verdict_lines(comparisons: list[Any], choices: list[Any], several: bool) -> list[str]:
    """One sentence per loss saying whether its difference to CE is within the seed-to-seed noise."""
    from .runners import BACKENDS

    lines = []
    for c in comparisons:
        prefix = f"{BACKENDS[c.backend].label}: " if several else ""
        if c.lr is None:
            lines.append(f"{prefix}{c.loss} diverged at every learning rate of the grid.")
            continue
        choice = next(ch for ch in choices if (ch.backend, ch.loss) == (c.backend, c.loss))
        diverged = [f"{rate:g}" for rate, score in choice.validation.items() if score is None]
        note = f" (diverged at lr {', '.join(diverged)})" if diverged else ""
        delta = c.difference.get("balanced_accuracy")
        if delta is None:
            continue
        seeds = len(c.runs)
        if not np.isfinite(delta.low):
            lines.append(f"{prefix}{c.loss}: {delta.mean:+.3f} on one seed, no interval{note}.")
            continue
        span = f"{delta.mean:+.3f} [{delta.low:+.3f}, {delta.high:+.3f}]"
        words = "interval contains 0" if c.verdict() == "within noise" else "interval excludes 0"
        lines.append(f"{prefix}{c.loss}: {span}, better on {c.wins}/{seeds} seeds; {c.verdict()} ({words}){note}.")
    if lines:
        lines.insert(0, "Test balanced accuracy vs CE, paired by seed (mean [95 % interval]):")
    return lines
