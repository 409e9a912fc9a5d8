"""Keras loss classes for the PolyLoss family.

Each class subclasses ``keras.losses.Loss``, holds its configuration, and
computes in ``call`` through the matching function of
``polyloss_tf.functional``; ``keras.losses.Loss.__call__`` then applies
``sample_weight``, Keras masks and the reduction exactly as for Keras' own
losses. All classes are registered as Keras serializables under the package
``"polyloss"``, so models compiled with them save to ``.keras`` and load with
``keras.saving.load_model`` without ``custom_objects``.

A ``Poly1...`` class takes ``epsilon`` and then the arguments of the Keras loss
it extends, in Keras' order and with Keras' defaults (``name`` gains the prefix
``poly1_``); its spec comes from ``polyloss_tf.functional.named_spec``, as the
matching function's does.

``reduction`` combines the per-example losses as in every Keras loss:
``"sum_over_batch_size"`` (the default: the sum divided by the number of
elements), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"`` (the sum divided
by the sum of the sample weights), or ``"none"`` / ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from polyloss_core import PolySpec, check_family, checks

from . import _validate
from . import functional as F


def _dtype_config(dtype: Any) -> Any:
    """The ``dtype`` constructor argument in a form ``keras.dtype_policies.get`` accepts back."""
    if dtype is None or isinstance(dtype, (str, dict)):  # a dict is a serialized DTypePolicy
        return dtype
    if isinstance(dtype, keras.dtype_policies.DTypePolicy):
        return keras.dtype_policies.serialize(dtype)
    return keras.backend.standardize_dtype(dtype)


class _SpecLoss(keras.losses.Loss):
    """A validated spec and call options, held; ``call`` is Keras' rank matching plus the shared body.

    Keras' ``LossFunctionWrapper`` pattern without re-validating on each call:
    ``__init__`` checks every argument once and keeps the spec, ``call`` passes
    both to ``polyloss_tf.functional.unreduced``, and ``get_config`` returns
    the constructor arguments (``config``) next to Keras' own ``name``,
    ``reduction`` and ``dtype``. ``Loss.__call__`` applies ``sample_weight``,
    masks and the reduction.
    """

    def __init__(self, spec: PolySpec, family: str, expect: str | None, arguments: Mapping[str, Any]) -> None:
        config = {key: value for key, value in arguments.items() if key not in ("self", "__class__", "spec")}
        reduction, name, dtype = config.pop("reduction"), config.pop("name"), config.pop("dtype")
        super().__init__(name=name, reduction=reduction, dtype=dtype)  # Keras checks `reduction`
        alpha = config.get("alpha")
        checked = {  # validated, JSON-safe values of the arguments this class has
            "from_logits": checks.check_bool("from_logits", config["from_logits"]),
            "axis": checks.check_int("axis", config["axis"]),
            "ignore_class": F.check_ignore_class(config.get("ignore_class"), family),
            "epsilon": spec.epsilons[0] if spec.epsilons else 0.0,
            "gamma": spec.gamma,
            "label_smoothing": spec.label_smoothing,
            "alpha": list(spec.alpha) if isinstance(spec.alpha, tuple) else None if alpha is None else float(alpha),
            "apply_class_balancing": bool(config.get("apply_class_balancing")),
        }
        config.update({key: value for key, value in checked.items() if key in config})
        self.__dict__.update(config)
        self.spec = spec
        self._config = {"dtype": _dtype_config(dtype), **config}
        if "family" in config:  # PolyLoss
            self._config["spec"] = spec.to_dict()
        self._options: dict[str, Any] = {"family": family, "expect": expect, "mean": family == "sigmoid"}
        self._options.update({key: config.get(key) for key in ("from_logits", "axis", "ignore_class")})

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = _validate.squeeze_or_expand_to_same_rank(y_true, y_pred)
        return F.unreduced(y_true, y_pred, self.spec, **self._options)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._config}


@keras.saving.register_keras_serializable(package="polyloss")
class Poly1CategoricalCrossentropy(_SpecLoss):
    """Poly-1 categorical cross-entropy: ``CE + epsilon * (1 - p_t)`` for one-hot or soft targets.

    For target rows ``q`` (smoothed to ``(1 - s) q + s / C``) each example's loss is
    ``sum_c q_c (-log p_c + epsilon (1 - p_c))``; for one-hot targets that is the
    paper's ``CE + epsilon (1 - p_t)``. With ``epsilon=0`` it equals
    ``keras.losses.CategoricalCrossentropy`` with the same arguments. One-hot
    batches reuse Keras' fused cross-entropy (``p_t = exp(-CE)``), recognised at
    run time; target rows are distributions (non-negative, summing to 1).

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``. Leng et al.
            suggest about ``2`` for ImageNet-style classification; tune per task.
        from_logits: whether ``y_pred`` holds logits. Default ``False``
            (probabilities, clipped to ``[1e-7, 1 - 1e-7]`` as Keras does).
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        axis: the class axis. Default ``-1``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        name: the loss name. Default ``"poly1_categorical_crossentropy"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``
            (``keras.backend.floatx()``).

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., C)`` (``C`` on ``axis``); unreduced
        output: ``(N, ...)``.

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], dtype="float32")
        >>> loss = Poly1CategoricalCrossentropy(epsilon=1.0)
        >>> round(float(loss(y_true, y_pred)), 4)
        1.6519

        With ``model.compile``:

            model.compile(optimizer="adam", loss=Poly1CategoricalCrossentropy(epsilon=2.0, from_logits=True))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_categorical_crossentropy",
        dtype: Any = None,
    ) -> None:
        spec = F.named_spec(epsilon, label_smoothing=label_smoothing)
        super().__init__(spec, "softmax", "dense", locals())


@keras.saving.register_keras_serializable(package="polyloss")
class Poly1SparseCategoricalCrossentropy(_SpecLoss):
    """Poly-1 sparse categorical cross-entropy: ``CE + epsilon * (1 - p_t)`` for integer labels.

    ``p_t = exp(-CE)`` comes from Keras' own fused sparse cross-entropy, so the
    polynomial term adds only a few elementwise operations per example. With
    ``epsilon=0`` it equals ``keras.losses.SparseCategoricalCrossentropy``
    (positions labelled ``ignore_class`` get loss 0 and are masked out of the
    reduction, as there). Unlike Keras' loss on TensorFlow, any ``axis`` works.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        ignore_class: a label value to ignore (e.g. ``-1`` or ``255``). Default ``None``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        axis: the class axis of ``y_pred``. Default ``-1``.
        name: the loss name. Default ``"poly1_sparse_categorical_crossentropy"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``.

    Shape:
        ``y_pred``: ``(N, ..., C)``; ``y_true``: ``(N, ...)`` or ``(N, ..., 1)``;
        unreduced output: ``(N, ...)``.

    Raises:
        ValueError: at call time, eagerly, for a label outside ``[0, C)`` that is not
            ``ignore_class``; inside a compiled graph that example's loss is ``NaN``.

    Examples:
        >>> import numpy as np
        >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]], dtype="float32")
        >>> loss = Poly1SparseCategoricalCrossentropy(epsilon=1.0)
        >>> round(float(loss(np.array([1, 2]), y_pred)), 4)
        1.6519

        With ``model.compile``:

            model.compile(optimizer="adam", loss=Poly1SparseCategoricalCrossentropy(from_logits=True))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        axis: int = -1,
        name: str = "poly1_sparse_categorical_crossentropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(F.named_spec(epsilon), "softmax", "index", locals())


@keras.saving.register_keras_serializable(package="polyloss")
class Poly1BinaryCrossentropy(_SpecLoss):
    """Poly-1 binary cross-entropy: ``BCE + epsilon * (1 - p_t)`` per element, averaged over ``axis``.

    ``p_t = t p + (1 - t)(1 - p)`` with the smoothed target ``t = (1 - s) y + s / 2``.
    As in ``keras.losses.BinaryCrossentropy`` the per-element values are averaged
    over ``axis`` before ``sample_weight`` and the reduction; with ``epsilon=0`` the
    two are equal.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        axis: the axis the per-element loss is averaged over. Default ``-1``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        name: the loss name. Default ``"poly1_binary_crossentropy"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``.

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., D)`` (``(N,)`` labels with ``(N, 1)``
        predictions are lined up as in Keras); unreduced output: ``(N, ...)``.

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0], [0.0, 0.0]], dtype="float32")
        >>> y_pred = np.array([[0.6, 0.4], [0.4, 0.6]], dtype="float32")
        >>> loss = Poly1BinaryCrossentropy(epsilon=1.0)
        >>> round(float(loss(y_true, y_pred)), 4)
        1.3649

        With ``model.compile``:

            model.compile(optimizer="adam", loss=Poly1BinaryCrossentropy(from_logits=True))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_binary_crossentropy",
        dtype: Any = None,
    ) -> None:
        spec = F.named_spec(epsilon, label_smoothing=label_smoothing)
        super().__init__(spec, "sigmoid", "dense", locals())


@keras.saving.register_keras_serializable(package="polyloss")
class Poly1CategoricalFocalCrossentropy(_SpecLoss):
    """Poly-1 categorical focal loss: ``alpha (FL(p_t) + epsilon (1 - p_t)^(gamma + 1))``.

    For target rows ``q`` each example's loss is
    ``sum_c alpha_c q_c ((1 - p_c)^gamma (-log p_c) + epsilon (1 - p_c)^(gamma + 1))``.
    ``alpha`` scales the polynomial term as well. With ``epsilon=0`` it equals
    ``keras.losses.CategoricalFocalCrossentropy`` (moderate logits: for logits
    Keras clips the softmax at ``1e-7``, this loss works from ``log_softmax`` and
    stays exact for confident predictions). One-hot batches are computed from
    Keras' fused cross-entropy (``p_t = exp(-CE)``); measured costs are in
    ``docs/benchmarks.md``.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        alpha: class weight: a number ``>= 0`` for every class, a list with one
            weight per class, or ``None``. Default ``0.25``.
        gamma: the focusing exponent, ``>= 0``. Default ``2.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        axis: the class axis. Default ``-1``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        name: the loss name. Default ``"poly1_categorical_focal_crossentropy"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``.

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., C)``; unreduced output: ``(N, ...)``.

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        >>> y_pred = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], dtype="float32")
        >>> loss = Poly1CategoricalFocalCrossentropy(epsilon=1.0)
        >>> round(float(loss(y_true, y_pred)), 4)
        0.0756

        With ``model.compile``:

            model.compile(optimizer="adam", loss=Poly1CategoricalFocalCrossentropy(alpha=[0.3, 0.3, 0.4]))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511; Lin et al., ICCV 2017.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        alpha: float | list[float] | None = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_categorical_focal_crossentropy",
        dtype: Any = None,
    ) -> None:
        spec = F.named_spec(epsilon, gamma, alpha, label_smoothing)
        super().__init__(spec, "softmax", "dense", locals())


@keras.saving.register_keras_serializable(package="polyloss")
class Poly1BinaryFocalCrossentropy(_SpecLoss):
    """Poly-1 binary focal loss, per element averaged over ``axis`` (the paper's detection loss).

    Per element ``alpha_t (BCE (1 - p_t)^gamma + epsilon (1 - p_t)^(gamma + 1))``,
    ``alpha_t = alpha t + (1 - alpha)(1 - t)`` when ``apply_class_balancing`` (else
    1). ``alpha_t`` scales the epsilon term too; the paper's released code leaves
    that term unweighted, which differs only when class balancing is on. With
    ``epsilon=0`` it equals ``keras.losses.BinaryFocalCrossentropy``.

    Args:
        epsilon: the Poly-1 coefficient, ``>= -1``. Default ``1.0``. Leng et al.
            report ``-1`` working well for COCO detection and segmentation.
        apply_class_balancing: weigh positives by ``alpha`` and negatives by
            ``1 - alpha``. Default ``False``.
        alpha: the positive-class weight, in ``[0, 1]``. Default ``0.25``.
        gamma: the focusing exponent, ``>= 0``. Default ``2.0``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        axis: the axis the per-element loss is averaged over. Default ``-1``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        name: the loss name. Default ``"poly1_binary_focal_crossentropy"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``.

    Shape:
        ``y_true`` and ``y_pred``: ``(N, ..., D)``; unreduced output: ``(N, ...)``.

    Examples:
        >>> import numpy as np
        >>> y_true = np.array([[0.0, 1.0], [0.0, 0.0]], dtype="float32")
        >>> y_pred = np.array([[0.6, 0.4], [0.4, 0.6]], dtype="float32")
        >>> loss = Poly1BinaryFocalCrossentropy(epsilon=1.0, gamma=2.0)
        >>> round(float(loss(y_true, y_pred)), 4)
        0.4458

        With ``model.compile``:

            model.compile(optimizer="adam", loss=Poly1BinaryFocalCrossentropy(epsilon=-1.0, from_logits=True))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511; Lin et al., ICCV 2017.
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly1_binary_focal_crossentropy",
        dtype: Any = None,
    ) -> None:
        spec = F.named_spec(epsilon, gamma, alpha, label_smoothing, apply_class_balancing)
        super().__init__(spec, "sigmoid", "dense", locals())


@keras.saving.register_keras_serializable(package="polyloss")
class PolyLoss(_SpecLoss):
    """Any member of the PolyLoss family as a Keras loss, described by a ``PolySpec``.

    ``l(p) = -(1 - p)^gamma log p + sum_j eps_j (1 - p)^(j + gamma)``, applied as
    ``sum_c w_c q_c l(p_c)`` per example (softmax family) or per element with
    ``alpha_t`` balancing (sigmoid family; the per-element values are averaged over
    ``axis`` as in ``keras.losses.BinaryCrossentropy``, so ``(N,)`` sample weights
    work). Class indices and per-class targets are both accepted: ``y_true`` with
    one dimension fewer than ``y_pred`` (or size 1 on ``axis``) holds indices.

    Args:
        spec: the loss: a ``polyloss_core.PolySpec``, or the ``dict`` from
            ``PolySpec.to_dict()``. Poly-1 is ``PolySpec.poly1(epsilon)``, Poly-N
            ``PolySpec.poly_n(eps_1, ..., eps_N)``, focal ``PolySpec.focal(gamma, alpha)``.
        family: ``"softmax"`` (default) or ``"sigmoid"``.
        from_logits: whether ``y_pred`` holds logits. Default ``False``.
        axis: the class axis. Default ``-1``.
        ignore_class: softmax family with class indices: a label value whose
            positions get loss 0 and are masked out. Default ``None``.
        reduction: a Keras reduction name (module docstring). Default ``"sum_over_batch_size"``.
        name: the loss name. Default ``"poly_loss"``.
        dtype: the computation dtype or a ``keras.DTypePolicy``. Default ``None``.

    Shape:
        ``y_pred``: ``(N, ..., C)`` with ``C`` on ``axis``; ``y_true``: the same shape
        (targets) or without ``axis`` (class indices); unreduced output: ``(N, ...)``.

    Examples:
        >>> import numpy as np
        >>> from polyloss_core import PolySpec, check_family
        >>> loss = PolyLoss(PolySpec.poly_n(2.0, -0.5), from_logits=True)
        >>> logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype="float32")
        >>> round(float(loss(np.array([0, 2]), logits)), 4)
        1.5842

        With ``model.compile``:

            model.compile(optimizer="adam", loss=PolyLoss(PolySpec.drop(2), from_logits=True))

    Reference: Leng et al., ICLR 2022, arXiv:2204.12511.
    """

    def __init__(
        self,
        spec: PolySpec | Mapping[str, Any],
        *,
        family: str = "softmax",
        from_logits: bool = False,
        axis: int = -1,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "poly_loss",
        dtype: Any = None,
    ) -> None:
        if isinstance(spec, Mapping):
            spec = PolySpec.from_dict(spec)
        if not isinstance(spec, PolySpec):
            raise TypeError(
                f"spec must be a polyloss_core.PolySpec or its to_dict() mapping, got {type(spec).__name__}"
            )
        family = check_family(spec, family)
        super().__init__(spec, family, None, locals())
