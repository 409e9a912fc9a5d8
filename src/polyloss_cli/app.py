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
    context_settings={"help_option_names": ["-h", "--help"]},
)

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
    """Print the series coefficients alpha_j of a PolyLoss spec and the spec as JSON.

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
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write (.png, .pdf or .svg).")] = Path(
        "polyloss-curves.png"
    ),
    epsilons: Annotated[
        str, typer.Option("--epsilons", help="Comma-separated Poly-1 epsilons to draw.")
    ] = DEFAULT_EPSILONS,
    gamma: Annotated[float, typer.Option("--gamma", help="Focal exponent; 0 leaves out the focal curves.")] = 2.0,
) -> None:
    """Draw loss and gradient dl/dp_t against p_t for CE, focal and Poly-1 variants."""
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
    output.parent.mkdir(parents=True, exist_ok=True)
    save_figure(curves, output)

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
            "(e.g. pip install 'polyloss-kit[torch]')",
            param_hint="'--backend'",
        )
    names = list(AUTO_ORDER) if choice is BackendChoice.all else [choice.value]
    for name in names:
        if not available(name):
            info = BACKENDS[name]
            raise typer.BadParameter(
                f"backend {name!r} needs {' and '.join(info.requires)}, which is not installed "
                f"(pip install 'polyloss-kit[{info.extra}]')",
                param_hint="'--backend'",
            )
    return names


@app.command()
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
        str, typer.Option("--epsilons", help="Comma-separated Poly-1 epsilons, one run each (e.g. '-1,0,1,2,4').")
    ] = DEFAULT_EPSILONS,
    gamma: Annotated[float, typer.Option("--gamma", help="Focal exponent of the focal and Poly-1 focal runs.")] = 2.0,
    focal_epsilon: Annotated[float, typer.Option("--focal-epsilon", help="Epsilon of the Poly-1 focal run.")] = 1.0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=10_000, help="Passes over the training split.")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Minibatch size.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Plain SGD learning rate (> 0).")] = 0.3,
    imbalance: Annotated[
        float, typer.Option("--imbalance", min=1.0, help="Largest / smallest training class size.")
    ] = 20.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the split, the weights and the batch order.")] = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for results.json and learning_curves.png.")
    ] = Path("polyloss-demo"),
) -> None:
    """Train one MLP on long-tailed digits with CE, focal, Poly-1 and Poly-1 focal, and compare.

    Every run starts from the same NumPy-generated weights and sees the same
    minibatches in the same order (plain SGD), whatever the loss or framework.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .data import make_problem
    from .demo import demo_losses, parity, run_all, save_learning_curves, save_results, summary
    from .runners import BACKENDS

    values = _parse_floats(epsilons, "'--epsilons'")
    if not (np.isfinite(lr) and lr > 0):
        raise typer.BadParameter(f"the learning rate must be a finite number > 0, got {lr:g}", param_hint="'--lr'")
    if not (np.isfinite(imbalance) and imbalance >= 1):
        raise typer.BadParameter(f"must be a finite number >= 1, got {imbalance:g}", param_hint="'--imbalance'")
    try:
        losses = demo_losses(values, gamma, focal_epsilon)
    except (ValueError, TypeError) as exc:
        raise _spec_error(exc, "'--epsilons' / '--gamma' / '--focal-epsilon'") from None
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{str(output)!r} exists and is not a directory", param_hint="'--output'")
    names = _pick_backends(backend)

    problem = make_problem(seed=seed, epochs=epochs, batch_size=batch_size, learning_rate=lr, imbalance=imbalance)
    console = _console()
    counts = np.bincount(problem.y_train, minlength=problem.num_classes)
    console.print(
        f"data: bundled digits, {len(problem.y_train)} long-tailed training images (per class {counts.tolist()}), "
        f"{len(problem.y_test)} balanced test images"
    )
    console.print(
        f"model: MLP {problem.x_train.shape[1]}-{problem.weights[0].shape[1]}-{problem.num_classes}, plain SGD "
        f"lr={lr:g}, batch {batch_size}, {epochs} epochs, seed {seed}; "
        f"backends: {', '.join(BACKENDS[n].label for n in names)}"
    )

    started = time.perf_counter()
    progress = Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("starting", total=len(names) * len(losses) * epochs)

        def on_start(backend_name: str, loss_name: str) -> None:
            progress.update(task, description=f"{BACKENDS[backend_name].label}: {loss_name}")

        def on_epoch(backend_name: str, loss_name: str, epoch: int, value: float) -> None:
            progress.update(
                task, advance=1, description=f"{BACKENDS[backend_name].label}: {loss_name} (loss {value:.4f})"
            )

        try:
            runs = run_all(names, losses, problem, on_epoch=on_epoch, on_start=on_start)
        except ImportError as exc:
            progress.stop()
            typer.echo(
                f"Error: could not import what --backend {backend.value if backend else 'auto'} needs: {exc}", err=True
            )
            raise typer.Exit(1) from None
    total = time.perf_counter() - started

    table = Table(title=f"Test metrics after {epochs} epochs (balanced test split; tail = 5 rarest training classes)")
    for column in ("backend", "loss"):
        table.add_column(column)
    for column in ("acc", "bal acc", "tail acc", "NLL", "ECE", "time s"):
        table.add_column(column, justify="right")
    for index, run in enumerate(runs):
        m = summary(run, problem)
        last_of_backend = index + 1 < len(runs) and runs[index + 1].backend != run.backend
        table.add_row(
            BACKENDS[run.backend].label,
            run.loss.name,
            _fmt(m["accuracy"]),
            _fmt(m["balanced_accuracy"]),
            _fmt(m["tail_accuracy"]),
            _fmt(m["nll"]),
            _fmt(m["ece"]),
            f"{m['seconds']:.2f}",
            end_section=last_of_backend,
        )
    console.print(table)

    rows = parity(runs)
    if rows:
        agreement = Table(
            title="Cross-framework agreement of the per-epoch training loss "
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

    output.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "backends": names,
        "epsilons": values,
        "gamma": gamma,
        "focal_epsilon": focal_epsilon,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "imbalance": imbalance,
        "seed": seed,
        "total_seconds": total,
    }
    if "tf" in names:
        import keras

        config["keras_backend"] = keras.backend.backend()
    save_results(output / "results.json", config, problem, runs)
    save_learning_curves(output / "learning_curves.png", runs)
    console.print(
        f"trained {len(runs)} runs in {total:.1f} s; wrote {output / 'results.json'} and "
        f"{output / 'learning_curves.png'}"
    )
