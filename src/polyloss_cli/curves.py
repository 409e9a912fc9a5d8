"""Loss and gradient of PolyLoss members as functions of ``p_t`` (NumPy and polyloss_core only).

This backs ``polyloss plot``: the paper-style picture of how Poly-1 and the focal
loss reshape cross-entropy and its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyloss_core import PolySpec, focal_factor, horner, poly_loss_from_log_prob

__all__ = ["Curve", "curve_specs", "loss_and_gradient", "save_figure"]


@dataclass(frozen=True)
class Curve:
    """One named member of the family drawn in the figure.

    Attributes:
        name: the legend label.
        spec: the loss.
    """

    name: str
    spec: PolySpec


def loss_and_gradient(p: np.ndarray, spec: PolySpec) -> tuple[np.ndarray, np.ndarray]:
    """The loss ``l(p)`` and its derivative ``dl/dp`` for target-class probabilities ``p``.

    The loss comes from :func:`polyloss_core.poly_loss_from_log_prob`. With
    ``x = 1 - p`` and ``g = gamma`` the derivative is::

        dl/dp = -( g x^(g-1) (-log p) + x^g / p + x^g sum_j (j + g) eps_j x^(j-1) )

    Args:
        p: probabilities in ``(0, 1)``.
        spec: the loss.

    Returns:
        ``(loss, dl_dp)`` as float64 arrays of the shape of ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size and not (np.all(p > 0) and np.all(p < 1)):
        raise ValueError(f"p must lie in the open interval (0, 1), got values in [{p.min()}, {p.max()}]")
    log_p = np.log(p)
    x = -np.expm1(log_p)
    loss = np.asarray(poly_loss_from_log_prob(log_p, x, spec), dtype=np.float64)
    gamma = spec.gamma
    x_gamma = focal_factor(x, gamma)
    focal_lead = gamma * x ** (gamma - 1.0) * -log_p if gamma else 0.0
    shifted = [(j + gamma) * eps for j, eps in enumerate(spec.epsilons, start=1)]
    series = shifted[0] + horner(x, shifted[1:]) if shifted else 0.0
    dl_dx = focal_lead + x_gamma / p + x_gamma * series
    return loss, np.asarray(-dl_dx, dtype=np.float64) * np.ones_like(p)


def curve_specs(epsilons: list[float], gamma: float) -> list[Curve]:
    """The curves of the figure: CE, Poly-1 per epsilon, and (for ``gamma > 0``) focal and Poly-1 focal.

    Args:
        epsilons: the Poly-1 epsilons to draw.
        gamma: the focal exponent; ``0`` leaves out the focal curves.

    Returns:
        The curves, in legend order.

    Raises:
        ValueError: an epsilon or gamma that gives an invalid spec (message from
            :class:`polyloss_core.PolySpec`).
    """
    curves = [Curve("CE", PolySpec.cross_entropy())]
    curves += [Curve(f"Poly-1 eps={eps:g}", PolySpec.poly1(eps)) for eps in epsilons]
    if gamma != 0:  # a negative gamma reaches PolySpec and is rejected there
        curves.append(Curve(f"focal gamma={gamma:g}", PolySpec.focal(gamma)))
        curves += [
            Curve(f"Poly-1 focal eps={eps:g} gamma={gamma:g}", PolySpec.poly1_focal(eps, gamma)) for eps in epsilons
        ]
    return curves


def save_figure(curves: list[Curve], path: Path, *, points: int = 500) -> None:
    """Draw loss and ``dl/dp_t`` against ``p_t`` side by side and save the figure.

    Cross-entropy-based curves are solid, focal-based ones dashed; each epsilon
    keeps one colour in both panels.

    Args:
        curves: what to draw (see :func:`curve_specs`).
        path: output file; the format follows its suffix (``.png``, ``.pdf``, ``.svg``).
        points: grid size on ``p_t in (0, 1)``.

    Returns:
        Nothing; the file is written.
    """
    from matplotlib.figure import Figure

    p = np.linspace(0.0, 1.0, points + 2)[1:-1]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    loss_axes, grad_axes = figure.subplots(1, 2)
    colours: dict[tuple[float, ...], str] = {}
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for curve in curves:
        key = curve.spec.epsilons
        colour = "black" if not key else colours.setdefault(key, palette[len(colours) % len(palette)])
        style = "--" if curve.spec.gamma else "-"
        loss, grad = loss_and_gradient(p, curve.spec)
        loss_axes.plot(p, loss, style, color=colour, label=curve.name, linewidth=1.6)
        grad_axes.plot(p, grad, style, color=colour, label=curve.name, linewidth=1.6)
    loss_axes.set(xlabel="$p_t$", ylabel="loss", title="Loss", xlim=(0, 1), ylim=(0, 5))
    grad_axes.set(xlabel="$p_t$", ylabel=r"$\partial L / \partial p_t$", title="Gradient", xlim=(0, 1), ylim=(-10, 0.5))
    for axes in (loss_axes, grad_axes):
        axes.grid(alpha=0.3)
        axes.axhline(0.0, color="grey", linewidth=0.6)
    grad_axes.legend(loc="lower right", fontsize=8)
    figure.suptitle("PolyLoss family: Poly-1 moves the leading (1 - p_t) coefficient (Leng et al., ICLR 2022)")
    figure.savefig(path, dpi=110)
