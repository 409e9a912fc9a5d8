r"""Poly-1 as a Hugging Face ``transformers`` causal-language-model loss.

``poly1_causal_lm_loss`` has the signature and semantics of transformers'
own ``ForCausalLMLoss`` (``transformers/loss/loss_utils.py``), so it can replace
it in the two places a training loop looks for a loss:

* ``model.loss_function = functools.partial(poly1_causal_lm_loss, epsilon=2.0)``:
  the model's ``forward(..., labels=...)`` then returns the Poly-1 loss, and
  ``Trainer``'s ``num_items_in_batch`` keeps gradient accumulation exact;
* ``Trainer(..., compute_loss_func=functools.partial(poly1_causal_lm_loss, epsilon=2.0))``:
  there the first argument is the model's output, whose ``logits`` are used.

This module does not import ``transformers``; install the ``[hf]`` extra to
train with it.

Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polyloss_core.checks import check_int, shape_error

from .functional import poly1_cross_entropy

__all__ = ["poly1_causal_lm_loss"]


def _logits_of(logits: Any) -> Tensor:
    """The logits tensor, or a model output's ``logits`` (what ``Trainer`` passes to ``compute_loss_func``)."""
    if isinstance(logits, Tensor):
        return logits
    found = logits.get("logits") if isinstance(logits, dict) else getattr(logits, "logits", None)
    if not isinstance(found, Tensor):
        raise TypeError(
            f"logits must be a torch.Tensor or a model output with a .logits tensor, got {type(logits).__name__}"
        )
    return found


def poly1_causal_lm_loss(
    logits: Any,
    labels: Tensor | None,
    vocab_size: int | None = None,
    num_items_in_batch: Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: Tensor | None = None,
    *,
    epsilon: float = 1.0,
    label_smoothing: float = 0.0,
    **kwargs: Any,
) -> Tensor:
    r"""Next-token Poly-1 cross-entropy with transformers' ``ForCausalLMLoss`` conventions.

    Token ``t`` predicts label ``t + 1``: the labels are shifted left by one and
    padded with ``ignore_index`` (unless ``shift_labels`` is given, already
    aligned with the logits). Per token
    \(\ell = \mathrm{CE} + \epsilon (1 - p_y)\) (computed in float32 from any
    logits dtype), and the result is

    * ``sum(\ell) / num_items_in_batch`` when ``num_items_in_batch`` is given
      (``Trainer`` passes the number of non-ignored labels of the whole
      accumulated batch, so gradient accumulation over micro-batches equals one
      large batch), otherwise
    * the mean over the non-ignored tokens.

    With ``epsilon=0`` it is transformers' causal-LM cross-entropy.

    Args:
        logits: ``(B, T, V)`` logits (any float dtype), or a model output with a
            ``logits`` field (``Trainer``'s ``compute_loss_func`` passes the output).
        labels: ``(B, T)`` token ids, ``ignore_index`` where no loss is wanted;
            unused when ``shift_labels`` is given.
        vocab_size: ``V``; default ``None``: ``logits.shape[-1]``.
        num_items_in_batch: denominator of the sum (int or 0-d tensor), or ``None``.
        ignore_index: label value that contributes nothing. Default ``-100``.
        shift_labels: ``(B, T)`` labels already shifted (padding-free collators,
            sequence parallelism). Default ``None``.
        epsilon: Poly-1 coefficient, ``>= -1``. Default ``1.0``.
        label_smoothing: ``s`` in ``[0, 1)``. Default ``0.0``.
        **kwargs: whatever else the model passes along (ignored, as transformers does).

    Shape:
        - logits: ``(B, T, V)``; labels / shift_labels: ``(B, T)``.
        - output: a scalar.

    Returns:
        The float32 loss (float64 for float64 logits).

    Raises:
        TypeError: ``logits`` is neither a tensor nor has ``.logits``; an invalid ``epsilon``.
        ValueError: ``labels`` and ``shift_labels`` both ``None``, a ``vocab_size`` that
            does not divide the logits, or a label outside ``[0, V)`` other than ``ignore_index``.

    Examples:
        >>> import torch
        >>> logits = torch.randn(2, 5, 11)
        >>> labels = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, -100, -100]])
        >>> loss = poly1_causal_lm_loss(logits, labels, epsilon=1.0)
        >>> expected = poly1_cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
        >>> torch.allclose(loss, expected)
        True

    Reference:
        Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
        Loss Functions", ICLR 2022, arXiv:2204.12511, equation (4).
    """
    z = _logits_of(logits)
    ignore_index = check_int("ignore_index", ignore_index)
    vocab = z.shape[-1] if vocab_size is None else check_int("vocab_size", vocab_size)
    if vocab < 1 or z.numel() % vocab:
        raise ValueError(f"vocab_size must divide the logits' size, got vocab_size={vocab} for {tuple(z.shape)}")
    if shift_labels is None:
        if labels is None:
            raise ValueError("labels and shift_labels are both None: one of them is needed")
        padded = F.pad(labels, (0, 1), value=ignore_index)
        shift_labels = padded[..., 1:]
    if shift_labels.numel() * vocab != z.numel():
        raise shape_error("shift_labels" if labels is None else "labels", z.shape[:-1], shift_labels.shape)
    z = z.float() if z.dtype != torch.float64 else z
    target = shift_labels.reshape(-1).to(z.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = poly1_cross_entropy(
        z.reshape(-1, vocab),
        target,
        epsilon=epsilon,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    if num_items_in_batch is None:
        return loss
    if isinstance(num_items_in_batch, Tensor):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch
