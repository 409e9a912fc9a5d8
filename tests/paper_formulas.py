"""The paper's formulas, written independently of ``polyloss_core.reference``.

Direct transcriptions: ``softmax`` by ``exp / sum exp``, ``log`` of the
probability, powers with ``**`` and the explicit sum over ``j``; no log-softmax,
no ``expm1``, no Horner. Every function also accepts complex logits, so its
gradient comes from the complex-step derivative ``Im f(z + ih) / h``, which is
exact to rounding (no finite-difference truncation error). Valid for moderate
logits only; the reference is the one that handles extremes.
"""

from __future__ import annotations

import numpy as np

from polyloss_core import PolySpec


def softmax_loss(logits, labels, spec: PolySpec, axis: int = -1) -> np.ndarray:
    """``sum_c w_c q'_c [-(1-p_c)^g log p_c + sum_j eps_j (1-p_c)^(j+g)]``."""
    z = np.moveaxis(np.asarray(logits), axis, -1)
    labels = np.asarray(labels)
    classes = z.shape[-1]
    q = np.eye(classes)[labels] if np.issubdtype(labels.dtype, np.integer) else np.moveaxis(labels, axis, -1)
    s = spec.label_smoothing
    q = (1 - s) * q + s / classes
    w = 1.0 if spec.alpha is None else np.asarray(spec.alpha)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    total = -((1 - p) ** spec.gamma) * np.log(p)
    for j, eps in enumerate(spec.epsilons, start=1):
        total = total + eps * (1 - p) ** (j + spec.gamma)
    return (w * q * total).sum(axis=-1)


def sigmoid_loss(logits, targets, spec: PolySpec, axis: int = -1) -> np.ndarray:
    """The paper's alpha-balanced Poly-1 focal code, generalised to N terms, with alpha_t on every term."""
    z = np.asarray(logits)
    t = np.asarray(targets)
    if np.issubdtype(t.dtype, np.integer) and t.ndim == z.ndim - 1:
        t = np.moveaxis(np.eye(z.shape[axis])[t], -1, axis)
    t = t.astype(np.float64)
    s = spec.label_smoothing
    t = (1 - s) * t + s / 2
    p = 1 / (1 + np.exp(-z))
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    pt = t * p + (1 - t) * (1 - p)
    loss = ce * (1 - pt) ** spec.gamma
    for j, eps in enumerate(spec.epsilons, start=1):
        loss = loss + eps * (1 - pt) ** (j + spec.gamma)
    if spec.alpha is not None:
        loss = (spec.alpha * t + (1 - spec.alpha) * (1 - t)) * loss
    return loss


def complex_step_grad(fn, logits, *args, h: float = 1e-30, **kwargs) -> np.ndarray:
    """Gradient of ``fn(logits, ...).sum()`` by the complex step, one logit at a time."""
    z = np.asarray(logits, dtype=np.float64)
    grad = np.empty_like(z)
    for index in np.ndindex(z.shape):
        shifted = z.astype(np.complex128)
        shifted[index] += 1j * h
        grad[index] = np.imag(fn(shifted, *args, **kwargs).sum()) / h
    return grad
