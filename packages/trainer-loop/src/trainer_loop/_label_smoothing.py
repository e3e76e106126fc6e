"""Label-smoothed cross entropy computed from a model's logits (``label_smoothing_factor``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional


@dataclass
class LabelSmoother:
    """Cross entropy with smoothed targets, ignoring positions labelled ``ignore_index``.

    Used instead of the model's own loss when ``label_smoothing_factor > 0``: the Trainer
    pops the labels before the forward pass and computes the loss here from the logits.

    Args:
        epsilon: the smoothing factor; the target distribution puts ``1 - epsilon`` on
            the right class and spreads ``epsilon`` evenly over all classes.
        ignore_index: label value of positions that carry no loss (padding).

    A dataclass, as the reference's: scripts print it, compare it and copy it with
    ``dataclasses.replace``.
    """

    epsilon: float = 0.1
    ignore_index: int = -100

    def __call__(
        self,
        model_output: Any,
        labels: torch.Tensor,
        shift_labels: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Return the smoothed loss: the mean over the labelled positions, or their sum
        divided by ``num_items_in_batch`` when given. A batch without any labelled
        position has a loss of 0 (not the NaN of an empty mean): one micro-batch of an
        accumulation window may hold only padding, and its share of the window is none.

        Args:
            model_output: the model's output (a dict with "logits" or a tuple whose
                first element is the logits).
            labels: class indices, shaped like the logits without their last dimension.
            shift_labels: for causal language models, predict token ``t + 1`` from
                position ``t`` (the logits' last position and the labels' first drop out).
            num_items_in_batch: the labelled positions of a whole accumulation window
                (all micro-batches, all processes), as transformers 5 passes it: each
                micro-batch's sum over that count adds up to the window's mean.
        """
        logits = model_output["logits"] if isinstance(model_output, dict) else model_output[0]
        if shift_labels:
            logits = logits[..., :-1, :].contiguous()
            labels = labels[..., 1:].contiguous()
        loss = functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=self.ignore_index,
            label_smoothing=self.epsilon,
            reduction="sum",
        )
        if num_items_in_batch is None:
            return loss / labels.ne(self.ignore_index).sum().clamp(min=1)
        if isinstance(num_items_in_batch, torch.Tensor):  # the count may be on another device
            num_items_in_batch = num_items_in_batch.to(loss.device)
        return loss / num_items_in_batch


def label_smoother_for(model: Any, epsilon: float) -> LabelSmoother | None:
    """The Trainer's smoother for ``label_smoothing_factor=epsilon``; None when off.

    Smoothing spreads one class's probability over the others, which means nothing for a
    multi-label classifier (independent yes/no per class, float targets): such a model
    keeps its own loss, with a warning, as in the reference.
    """
    if epsilon <= 0:
        return None
    config = getattr(model, "config", None)
    if getattr(config, "problem_type", None) == "multi_label_classification":
        warnings.warn(
            "label_smoothing_factor is ignored for a multi-label classification model "
            "(config.problem_type='multi_label_classification'): it trains with its own loss.",
            UserWarning,
            stacklevel=3,
        )
        return None
    return LabelSmoother(epsilon=epsilon)
