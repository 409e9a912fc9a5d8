"""The framework-agnostic description of a PolyLoss: ``PolySpec``.

A PolyLoss is written as a power series in ``x = 1 - p`` (``p`` the predicted
probability of the target class):

    l(p) = -(1 - p)^gamma * log(p) + sum_{j=1..N} eps_j * (1 - p)^(j + gamma)
         = sum_{j>=1} alpha_j * (1 - p)^(j + gamma),      alpha_j = 1/j + eps_j

with ``eps_j = 0`` for ``j > N``. Cross-entropy is ``eps = ()`` and ``gamma = 0``;
the focal loss keeps ``eps = ()`` and shifts every power by ``gamma``; Poly-1 adds
one coefficient ``eps_1``; Poly-N changes the first N coefficients.

Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .checks import check_epsilon, check_gamma, check_label_smoothing, real

__all__ = ["FAMILIES", "Family", "PolySpec", "check_family", "poly1_spec"]

_as_real = real

Family = Literal["softmax", "sigmoid"]
FAMILIES: tuple[str, ...] = ("softmax", "sigmoid")

# Leading coefficients this small are treated as exactly zero when deciding
# whether the loss increases next to p = 1 (so drop-N written with rounded
# decimals is not rejected for a rounding error).
_ZERO_COEFFICIENT = 1e-9


def _as_alpha(value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping, set, frozenset)):
        raise TypeError(f"alpha must be None, a number or a sequence of numbers, got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (Sequence, np.ndarray)):
        shape = np.shape(value)
        if len(shape) != 1:
            raise ValueError(f"alpha must be a number or a 1-d sequence (one weight per class), got shape {shape}")
        weights = tuple(_as_real(f"alpha[{i}]", v) for i, v in enumerate(value))
        if not weights:
            raise ValueError("alpha must not be an empty sequence; use None for no weighting")
        for i, w in enumerate(weights):
            if w < 0:
                raise ValueError(f"alpha[{i}] must be >= 0, got {w!r}")
        return weights
    alpha = _as_real("alpha", value)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0 (or None to disable), got {alpha!r}")
    return alpha


@dataclass(frozen=True)
class PolySpec:
    """Coefficients and options of one member of the PolyLoss family.

    The loss of one probability ``p`` is:

        l(p) = -(1 - p)^gamma * log(p) + sum_{j=1..N} epsilons[j-1] * (1 - p)^(j + gamma)

    i.e. the coefficient of ``(1 - p)^(j + gamma)`` is ``alpha_j = 1/j + eps_j``.

    Args:
        epsilons: ``(eps_1, ..., eps_N)``, the perturbation of the first N
            coefficients. Default ``()`` (cross-entropy or focal loss).
            ``eps_1 >= -1`` is required (the paper's validity bound).
        gamma: focal exponent, ``>= 0``. Default ``0.0``.
        alpha: class balancing. ``None`` (default) weighs every class 1. For the
            softmax family a number ``>= 0`` scales every class and a sequence
            gives one weight per class; for the sigmoid family a number in
            ``[0, 1]`` weighs positives by ``alpha`` and negatives by ``1 - alpha``.
        label_smoothing: ``s`` in ``[0, 1)``. Softmax targets become
            ``(1 - s) q + s / C``, sigmoid targets ``(1 - s) t + s / 2``. Default 0.
        allow_increasing: skip the check that ``l(p)`` is non-increasing on
            ``(0, 1)``. Default ``False``: a spec whose loss would rise as the
            prediction improves is rejected with a ``ValueError``.

    Raises:
        ValueError: a non-finite number, ``eps_1 < -1``, ``gamma < 0``,
            ``label_smoothing`` outside ``[0, 1)``, a negative ``alpha``, or a loss
            that increases somewhere on ``p in (0, 1)``.
        TypeError: a field that is not a number.

    Examples:
        >>> spec = PolySpec.poly1(epsilon=1.0)
        >>> spec.coefficients(3).tolist()
        [2.0, 0.5, 0.3333333333333333]
        >>> PolySpec.from_dict(spec.to_dict()) == spec
        True
    """

    epsilons: tuple[float, ...] = ()
    gamma: float = 0.0
    alpha: float | tuple[float, ...] | None = None
    label_smoothing: float = 0.0
    allow_increasing: bool = False

    def __post_init__(self) -> None:
        raw = self.epsilons
        if isinstance(raw, np.ndarray) and raw.ndim != 1:
            raise ValueError(f"epsilons must be a 1-d sequence of numbers, got an array of shape {raw.shape}")
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, (Sequence, np.ndarray)):
            raise TypeError(
                f"epsilons must be an ordered sequence of numbers (a tuple or list), got {raw!r} "
                f"of type {type(raw).__name__}"
            )
        epsilons = tuple(_as_real(f"epsilons[{i}]", e) for i, e in enumerate(raw))
        gamma = _as_real("gamma", self.gamma)
        smoothing = _as_real("label_smoothing", self.label_smoothing)
        alpha = _as_alpha(self.alpha)
        if not isinstance(self.allow_increasing, (bool, np.bool_)):
            raise TypeError(f"allow_increasing must be a bool, got {self.allow_increasing!r}")
        object.__setattr__(self, "epsilons", epsilons)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "label_smoothing", smoothing)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "allow_increasing", bool(self.allow_increasing))

        check_gamma(gamma)
        check_label_smoothing(smoothing)
        if epsilons:
            check_epsilon(epsilons[0], "epsilons[0]")
        if not self.allow_increasing:
            problem = _increasing_reason(epsilons, gamma)
            if problem is not None:
                raise ValueError(
                    f"epsilons={epsilons!r} with gamma={gamma!r} gives a loss that increases "
                    f"with p: {problem}. Pass allow_increasing=True to use it anyway."
                )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def cross_entropy(cls, *, label_smoothing: float = 0.0) -> PolySpec:
        """Plain cross-entropy: ``alpha_j = 1/j`` for every ``j``."""
        return cls(label_smoothing=label_smoothing)

    @classmethod
    def poly1(cls, epsilon: float = 1.0, *, label_smoothing: float = 0.0) -> PolySpec:
        """Poly-1: ``CE + epsilon * (1 - p_t)``, the paper's headline loss (default ``epsilon=1``)."""
        return cls(epsilons=(epsilon,), label_smoothing=label_smoothing)

    @classmethod
    def poly_n(cls, *epsilons: float, label_smoothing: float = 0.0) -> PolySpec:
        """Poly-N: the first N coefficients moved by ``epsilons``."""
        if len(epsilons) == 1 and isinstance(epsilons[0], (Sequence, np.ndarray)):
            epsilons = tuple(epsilons[0])
        return cls(epsilons=tuple(epsilons), label_smoothing=label_smoothing)

    @classmethod
    def drop(cls, n: int, *, label_smoothing: float = 0.0) -> PolySpec:
        """Drop-N: cross-entropy with its leading ``n`` polynomial terms removed."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return cls(epsilons=tuple(-1.0 / j for j in range(1, int(n) + 1)), label_smoothing=label_smoothing)

    @classmethod
    def focal(
        cls, gamma: float = 2.0, alpha: float | Sequence[float] | None = None, *, label_smoothing: float = 0.0
    ) -> PolySpec:
        """Focal loss: every power of ``(1 - p)`` shifted by ``gamma`` (Lin et al. 2017)."""
        return cls(gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)  # type: ignore[arg-type]

    @classmethod
    def poly1_focal(
        cls,
        epsilon: float = 1.0,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> PolySpec:
        """Poly-1 focal: ``focal + epsilon * (1 - p_t)^(1 + gamma)``."""
        return cls(epsilons=(epsilon,), gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ derived
    def coefficients(self, n: int) -> np.ndarray:
        """The first ``n`` series coefficients ``alpha_j = 1/j + eps_j`` as float64.

        ``alpha_j`` multiplies ``(1 - p)^(j + gamma)``.

        Examples:
            >>> PolySpec.drop(1).coefficients(3).tolist()
            [0.0, 0.5, 0.3333333333333333]
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        j = np.arange(1, int(n) + 1, dtype=np.float64)
        out = 1.0 / j
        k = min(len(self.epsilons), int(n))
        out[:k] += np.asarray(self.epsilons[:k], dtype=np.float64)
        return out

    @property
    def is_cross_entropy(self) -> bool:
        """True when the loss is plain (possibly smoothed, weighted) cross-entropy."""
        return self.gamma == 0.0 and not any(self.epsilons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe ``dict`` that ``from_dict`` turns back into an equal spec."""
        alpha: Any = list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha
        return {
            "epsilons": list(self.epsilons),
            "gamma": self.gamma,
            "alpha": alpha,
            "label_smoothing": self.label_smoothing,
            "allow_increasing": self.allow_increasing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolySpec:
        """Rebuild a spec from ``to_dict`` output; unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        known = {"epsilons", "gamma", "alpha", "label_smoothing", "allow_increasing"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PolySpec field(s) {unknown}; expected a subset of {sorted(known)}")
        kwargs = dict(data)
        if "epsilons" in kwargs:
            epsilons = kwargs["epsilons"]
            if not isinstance(epsilons, (list, tuple)):
                raise TypeError(
                    f"PolySpec field 'epsilons' must be a list of numbers, got {epsilons!r} "
                    f"of type {type(epsilons).__name__}"
                )
            kwargs["epsilons"] = tuple(epsilons)
        if isinstance(kwargs.get("alpha"), list):
            kwargs["alpha"] = tuple(kwargs["alpha"])
        return cls(**kwargs)


_POLY1_SPECS: dict[tuple[Any, ...], PolySpec] = {}
_MAX_POLY1_SPECS = 512


def poly1_spec(epsilon: Any = 1.0, gamma: Any = 0.0, alpha: Any = None, label_smoothing: Any = 0.0) -> PolySpec:
    """``PolySpec.poly1_focal(epsilon, gamma, alpha, label_smoothing=...)``, built once per distinct arguments.

    The one spec cache of the package: every adapter's named Poly-1 losses get
    their spec here on each call, so a repeated call costs a dictionary lookup.
    Arguments are told apart by type as well as value (``True`` is not ``1``),
    so a cached spec is always what the constructor itself would return; an
    unhashable ``alpha`` (a list) is built each time.

    Args:
        epsilon: ``eps_1``, ``>= -1``. Default ``1.0``.
        gamma: the focal exponent, ``>= 0``. Default ``0.0`` (Poly-1 cross-entropy).
        alpha: ``None``, a number ``>= 0``, or one weight per class (as ``PolySpec.alpha``). Default ``None``.
        label_smoothing: in ``[0, 1)``. Default ``0.0``.

    Returns:
        The (shared, immutable) ``PolySpec``; bad arguments raise ``PolySpec``'s own errors.

    Examples:
        >>> poly1_spec(2.0) is poly1_spec(2.0)
        True
        >>> poly1_spec(1.0, gamma=2.0, alpha=0.25).gamma
        2.0
    """
    arguments = (epsilon, gamma, alpha, label_smoothing)
    key = (*arguments, *map(type, arguments))
    try:
        spec, keep = _POLY1_SPECS.get(key), True
    except TypeError:  # an unhashable alpha: built each time, not kept
        spec, keep = None, False
    if spec is None:
        spec = PolySpec(epsilons=(epsilon,), gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)
        if keep:
            if len(_POLY1_SPECS) >= _MAX_POLY1_SPECS:
                _POLY1_SPECS.clear()
            _POLY1_SPECS[key] = spec
    return spec


def check_family(spec: PolySpec, family: str, num_classes: int | None = None) -> str:
    """Check that ``spec`` can be used with ``family`` and return the family name.

    The sigmoid family needs ``alpha`` to be ``None`` or one number in ``[0, 1]``;
    the softmax family accepts a per-class ``alpha`` whose length must equal
    ``num_classes`` when that is known.
    """
    if not isinstance(spec, PolySpec):
        raise TypeError(f"spec must be a PolySpec, got {type(spec).__name__}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    alpha = spec.alpha
    if family == "sigmoid":
        if isinstance(alpha, tuple):
            raise ValueError(f"alpha must be a single number in [0, 1] for the sigmoid family, got {alpha!r}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] for the sigmoid family, got {alpha!r}")
    elif isinstance(alpha, tuple) and num_classes is not None and len(alpha) != num_classes:
        raise ValueError(f"alpha has {len(alpha)} per-class weights but the input has {num_classes} classes")
    return family


def _increasing_reason(epsilons: tuple[float, ...], gamma: float) -> str | None:
    """Why ``l(p)`` increases somewhere on ``(0, 1)``, or ``None`` when it never does.

    With ``x = 1 - p``, ``l = sum_j alpha_j x^(j+gamma)`` and
    ``dl/dx = x^(gamma-1) * h(x)`` with ``h(x) = sum_j (j + gamma) alpha_j x^j``.
    The loss is non-increasing in ``p`` exactly when ``h >= 0`` on ``(0, 1)``.
    Beyond the first N terms every coefficient of ``h`` is positive, so:
    the first non-zero coefficient decides the sign next to ``x = 0``, and a
    dense grid (closed form of the tail) decides the rest.
    """
    n = len(epsilons)
    if all(1.0 / j + e >= 0 for j, e in enumerate(epsilons, start=1)):
        # Every coefficient (j + gamma)(1/j + eps_j) of h is >= 0 (Poly-1 with eps_1 >= -1 always):
        # h >= 0 without the grid, in pure Python, so torch.compile can trace a first construction.
        return None
    from .series import horner  # series imports this module

    j = np.arange(1, n + 1, dtype=np.float64)
    eps = np.asarray(epsilons, dtype=np.float64)
    # Everything is divided by the largest coefficient, so huge epsilons (1e308) cannot overflow
    # to inf - inf = nan; the sign of h, all that matters, is unchanged. The division happens in two
    # steps (the epsilons first) so that (j + gamma) * eps cannot overflow either.
    eps_scale = max(1.0, float(np.max(np.abs(eps))))
    unit = (j + gamma) * (eps / eps_scale)
    unit_scale = max(1.0 / eps_scale, float(np.max(np.abs(unit))))
    weighted_over_scale = unit / unit_scale  # coefficients of the polynomial part of h, over scale
    head = (j + gamma) / j / eps_scale / unit_scale + weighted_over_scale  # coefficients of h for j <= N
    for k, c in enumerate(head, start=1):
        if float(abs(c)) * eps_scale * unit_scale <= _ZERO_COEFFICIENT:  # Python floats: no overflow warning
            continue
        if c < 0:
            return f"alpha_{k} = 1/{k} + eps_{k} = {1.0 / k + epsilons[k - 1]:.6g} < 0 is the leading term near p = 1"
        break
    # Dense check of h(x) = g*(-log(1-x)) + x/(1-x) + sum_j (j+g) eps_j x^j on (0, 1), by Horner's
    # rule on the grid (memory independent of N).
    x = np.unique(np.concatenate([np.geomspace(1e-6, 0.5, 4000), np.linspace(0.5, 1 - 1e-9, 20000)]))
    smooth = (x / (1.0 - x) + gamma * -np.log1p(-x)) / eps_scale / unit_scale
    h = smooth + horner(x, weighted_over_scale.tolist())
    # Relative slack for float rounding of the cancelling terms.
    slack = smooth + horner(x, np.abs(weighted_over_scale).tolist())
    bad = h < -1e-9 * slack
    if bad.any():
        worst = int(np.argmin(np.where(bad, h / slack, np.inf)))
        return f"dl/dp > 0 at p = {1.0 - x[worst]:.6g}"
    return None
