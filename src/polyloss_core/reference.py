"""Float64 NumPy oracle for the PolyLoss family (Leng et al., ICLR 2022, arXiv:2204.12511), with analytic gradients.

Every adapter is tested against these functions. They favour clarity and
accuracy over speed: all work is done in float64 from log-probabilities, and
``1 - p`` is computed as ``-expm1(log p)`` so it keeps full relative precision
as ``p -> 1``.

Softmax family (one class per example), with ``p = softmax(z)`` along ``axis``,
smoothed targets ``q' = (1 - s) q + s / C`` and class weights ``w_c``:

    loss = sum_c w_c q'_c l(p_c),   l(p) = -(1-p)^g log p + sum_j eps_j (1-p)^(j+g)

Sigmoid family (independent binary decisions), per element, with
``p = sigmoid(z)``, ``t' = (1 - s) t + s / 2``, ``p_t = t' p + (1 - t')(1 - p)``
and ``alpha_t = alpha t' + (1 - alpha)(1 - t')``:

    loss = alpha_t * (BCE(z, t') (1 - p_t)^g + sum_j eps_j (1 - p_t)^(j+g))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import check_axis
from .series import horner
from .spec import PolySpec, check_family

__all__ = [
    "sigmoid_poly_loss",
    "sigmoid_poly_loss_grad",
    "softmax_poly_loss",
    "softmax_poly_loss_grad",
]


# --------------------------------------------------------------------------- helpers
def _as_float64(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must be a real array, got dtype {array.dtype}")
    out = array.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite")
    return out


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def _softmax_targets(labels: Any, logits: np.ndarray, axis: int, smoothing: float) -> np.ndarray:
    """Dense (smoothed) target distribution with the shape of ``logits``."""
    labels = np.asarray(labels)
    num_classes = logits.shape[axis]
    if np.issubdtype(labels.dtype, np.integer):
        expected = logits.shape[:axis] + logits.shape[axis + 1 :]
        if labels.shape != expected:
            raise ValueError(
                f"integer labels must have shape {expected} (logits shape {logits.shape} without axis {axis}), got {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels[(labels < 0) | (labels >= num_classes)].ravel()[0]
            raise ValueError(f"labels must be in [0, {num_classes}), got {int(bad)}")
        q = (
            np.expand_dims(labels, axis)
            == np.arange(num_classes).reshape([-1 if d == axis else 1 for d in range(logits.ndim)])
        ).astype(np.float64)
    elif np.issubdtype(labels.dtype, np.floating):
        if labels.shape != logits.shape:
            raise ValueError(f"probability labels must have the logits' shape {logits.shape}, got {labels.shape}")
        q = _as_float64("labels", labels)
    else:
        raise TypeError(f"labels must be integer class indices or floating probabilities, got dtype {labels.dtype}")
    if smoothing:
        q = (1.0 - smoothing) * q + smoothing / num_classes
    return q


def _class_weights(spec: PolySpec, weight: Any, logits: np.ndarray, axis: int) -> np.ndarray | float:
    num_classes = logits.shape[axis]
    check_family(spec, "softmax", num_classes)
    w: np.ndarray | float = 1.0
    if weight is not None:
        w = _as_float64("weight", weight)
        if w.shape != (num_classes,):
            raise ValueError(f"weight must have shape ({num_classes},), got {w.shape}")
    if spec.alpha is not None:
        w = w * np.asarray(spec.alpha, dtype=np.float64)
    if isinstance(w, np.ndarray) and w.ndim == 1:
        w = w.reshape([-1 if d == axis else 1 for d in range(logits.ndim)])
    return w


def _shifted_series(x: np.ndarray, spec: PolySpec) -> np.ndarray | float:
    """``sum_j (j + g) eps_j x^(j-1)``: the polynomial part of ``d/dx`` divided by ``x^g``."""
    coeffs = [(j + spec.gamma) * e for j, e in enumerate(spec.epsilons, start=1)]
    if not coeffs:
        return 0.0
    return coeffs[0] + horner(x, coeffs[1:])


def _focal_lead(x: np.ndarray, minus_log: np.ndarray, gamma: float) -> np.ndarray | float:
    """``g x^(g-1) * minus_log`` with its limit 0 where ``x == 0`` (``minus_log`` is O(x) there)."""
    if gamma == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, gamma * np.where(x > 0, x, 1.0) ** (gamma - 1.0) * minus_log, 0.0)


def _p_times_dl_dx(x: np.ndarray, log_p: np.ndarray, spec: PolySpec) -> np.ndarray:
    """``p * dl/dx`` with ``x = 1 - p``, computed without dividing by ``p``.

    ``dl/dx = g x^(g-1) (-log p) + x^g / p + x^g sum_j (j+g) eps_j x^(j-1)``.
    """
    p = np.exp(log_p)
    xg = x**spec.gamma if spec.gamma else 1.0
    return np.asarray(p * _focal_lead(x, -log_p, spec.gamma) + xg + p * xg * _shifted_series(x, spec))


# --------------------------------------------------------------------------- softmax
def softmax_poly_loss(logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1, weight: Any = None) -> np.ndarray:
    """Per-example softmax PolyLoss in float64.

    ``loss = sum_c w_c q'_c l(p_c)`` with ``p = softmax(logits)`` along ``axis``.

    Args:
        logits: real array of shape ``(..., C, ...)`` with the classes on ``axis``.
        labels: integer class indices (the logits' shape without ``axis``) or
            floating target distributions (the logits' shape).
        spec: the loss; ``spec.alpha`` (number or per-class sequence) and
            ``spec.label_smoothing`` apply.
        axis: class axis. Default ``-1``.
        weight: optional per-class weights of shape ``(C,)`` (torch's ``weight``),
            multiplied with ``spec.alpha``.

    Returns:
        float64 array with the logits' shape without ``axis``.

    Examples:
        >>> import numpy as np
        >>> z = np.array([[2.0, 0.0, -1.0]])
        >>> ce = softmax_poly_loss(z, np.array([0]), PolySpec.cross_entropy())
        >>> p1 = softmax_poly_loss(z, np.array([0]), PolySpec.poly1(1.0))
        >>> bool(np.isclose(p1 - ce, 1 - np.exp(-ce)).all())
        True
    """
    z = _as_float64("logits", logits)
    ax = check_axis(axis, z.shape)
    q = _softmax_targets(labels, z, ax, spec.label_smoothing)
    w = _class_weights(spec, weight, z, ax)
    log_p = _log_softmax(z, ax)
    x = -np.expm1(log_p)
    per_class = -log_p if spec.gamma == 0 else -(x**spec.gamma) * log_p
    if spec.epsilons:
        per_class = per_class + horner(x, spec.epsilons) * (x**spec.gamma if spec.gamma else 1.0)
    return np.asarray(np.sum(w * q * per_class, axis=ax))


def softmax_poly_loss_grad(
    logits: Any, labels: Any, spec: PolySpec, *, axis: int = -1, weight: Any = None
) -> np.ndarray:
    """Gradient of ``softmax_poly_loss(...).sum()`` with respect to ``logits``.

    With ``a_c = w_c q'_c p_c dl/dp(p_c)``: ``d loss / d z_k = a_k - p_k sum_c a_c``.
    """
    z = _as_float64("logits", logits)
    ax = check_axis(axis, z.shape)
    q = _softmax_targets(labels, z, ax, spec.label_smoothing)
    w = _class_weights(spec, weight, z, ax)
    log_p = _log_softmax(z, ax)
    p = np.exp(log_p)
    x = -np.expm1(log_p)
    a = -w * q * _p_times_dl_dx(x, log_p, spec)  # p dl/dp = -p dl/dx
    return np.asarray(a - p * a.sum(axis=ax, keepdims=True))


# --------------------------------------------------------------------------- sigmoid
def _sigmoid_targets(targets: Any, logits: np.ndarray, axis: int, smoothing: float) -> np.ndarray:
    t = np.asarray(targets)
    if np.issubdtype(t.dtype, np.integer) and t.ndim == logits.ndim - 1:
        t = _softmax_targets(t, logits, axis, 0.0)
    elif np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating) or t.dtype == np.bool_:
        if t.shape != logits.shape:
            raise ValueError(f"targets must have the logits' shape {logits.shape}, got {t.shape}")
        t = t.astype(np.float64)
        if t.size and (t.min() < 0 or t.max() > 1 or not np.all(np.isfinite(t))):
            raise ValueError(f"targets must be in [0, 1], got values in [{t.min()}, {t.max()}]")
    else:
        raise TypeError(f"targets must be real, got dtype {t.dtype}")
    if smoothing:
        t = (1.0 - smoothing) * t + 0.5 * smoothing
    return t


def _sigmoid_parts(logits: Any, targets: Any, spec: PolySpec, axis: int) -> tuple[np.ndarray, ...]:
    check_family(spec, "sigmoid")
    z = _as_float64("logits", logits)
    ax = check_axis(axis, z.shape) if z.ndim else 0
    t = _sigmoid_targets(targets, z, ax, spec.label_smoothing)
    log_p, log_1mp = _log_sigmoid(z), _log_sigmoid(-z)
    p, one_minus_p = np.exp(log_p), np.exp(log_1mp)
    bce = -(t * log_p + (1.0 - t) * log_1mp)
    # 1 - p_t = t (1 - p) + (1 - t) p: a sum of non-negative terms, no cancellation.
    x = t * one_minus_p + (1.0 - t) * p
    alpha = spec.alpha
    alpha_t = 1.0 if alpha is None or isinstance(alpha, tuple) else alpha * t + (1.0 - alpha) * (1.0 - t)
    return z, t, p, one_minus_p, bce, x, np.asarray(alpha_t)


def sigmoid_poly_loss(logits: Any, targets: Any, spec: PolySpec, *, axis: int = -1) -> np.ndarray:
    """Per-element sigmoid PolyLoss in float64.

    ``loss = alpha_t (BCE(z, t) (1 - p_t)^g + sum_j eps_j (1 - p_t)^(j+g))``.

    Args:
        logits: real array of any shape.
        targets: per-element targets in ``[0, 1]`` with the logits' shape, or
            integer class indices of the logits' shape without ``axis`` (one-hot
            along ``axis``).
        spec: the loss; ``spec.alpha`` must be ``None`` or in ``[0, 1]``.
        axis: the class axis used only for integer class indices. Default ``-1``.

    Returns:
        float64 array with the logits' shape.

    Examples:
        >>> import numpy as np
        >>> loss = sigmoid_poly_loss(np.array([0.0]), np.array([1.0]), PolySpec.poly1_focal(1.0, 2.0, 0.25))
        >>> round(float(loss[0]), 6)  # 0.25 * (log 2 * 0.25 + 1 * 0.125)
        0.074572
    """
    _, _, _, _, bce, x, alpha_t = _sigmoid_parts(logits, targets, spec, axis)
    g = spec.gamma
    loss = bce * (x**g if g else 1.0)
    if spec.epsilons:
        loss = loss + horner(x, spec.epsilons) * (x**g if g else 1.0)
    return np.asarray(alpha_t * loss)


def sigmoid_poly_loss_grad(logits: Any, targets: Any, spec: PolySpec, *, axis: int = -1) -> np.ndarray:
    """Gradient of ``sigmoid_poly_loss(...).sum()`` with respect to ``logits``."""
    _, t, p, one_minus_p, bce, x, alpha_t = _sigmoid_parts(logits, targets, spec, axis)
    g = spec.gamma
    xg = x**g if g else 1.0
    dx_dz = (1.0 - 2.0 * t) * p * one_minus_p  # d(1 - p_t)/dz
    # d/dx of the x-dependent factors: g x^(g-1) BCE + x^g sum_j (j+g) eps_j x^(j-1).
    # x^(g-1) times dx/dz stays finite as x -> 0 because dx/dz carries a factor x there.
    d_dx = _focal_lead(x, bce, g) + xg * _shifted_series(x, spec)
    # p - t written as (1 - t) p - t (1 - p): no cancellation as p -> 1 (p - 1 would round to 0).
    grad = ((1.0 - t) * p - t * one_minus_p) * xg + d_dx * dx_dz
    return np.asarray(alpha_t * grad)
