"""Reading what a model's forward returned (tuples, dicts, ModelOutput objects)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def loss_from_outputs(outputs: Any) -> torch.Tensor:
    """The loss in a model's output: first of a tuple, or ``"loss"`` of a mapping."""
    if isinstance(outputs, (dict, Mapping)):  # dict first: it needs no ABC check
        loss = outputs.get("loss")
        if loss is None:
            raise ValueError(
                "The model did not return a loss from the inputs; it returned only "
                f"{', '.join(map(str, outputs.keys()))}. A model trained by Trainer must "
                "return its loss first (a tuple) or under 'loss' (a dict / ModelOutput) when "
                "it receives labels; check that the batch holds the label key(s) the model "
                "expects (args.label_names)."
            )
        return loss
    if isinstance(outputs, (tuple, list)):
        return outputs[0]
    if isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
        return outputs
    raise ValueError(
        f"The model returned {type(outputs).__name__}; Trainer needs a tuple whose first "
        "element is the loss, or a dict / ModelOutput with a 'loss' entry."
    )
