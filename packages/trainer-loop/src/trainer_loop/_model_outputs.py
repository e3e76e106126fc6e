"""Reading what a model's forward returned (tuples, dicts, ModelOutput objects).

Training back-propagates one number per micro-batch. A loss that is not one (a loss per
example, the logits of a model that computed no loss, a string) would otherwise fail
inside ``torch.autograd`` with "grad can be implicitly created only for scalar
outputs", or as an attribute error in the runtime; the checks here say instead what
the model returned and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def loss_from_outputs(outputs: Any, *, require_scalar: bool = True) -> torch.Tensor:
    """The loss in a model's output: first of a tuple, or ``"loss"`` of a mapping.

    Args:
        outputs: what ``model(**inputs)`` returned.
        require_scalar: refuse a loss that is not a tensor holding one number (what
            back-propagation needs). Callers that reduce the loss themselves (evaluation,
            which averages a per-example loss; ``compute_loss``, whose result a subclass
            or DataParallel may still reduce) pass False.

    Raises:
        ValueError: the output holds no loss, or (``require_scalar``) not a single number.
    """
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
        where = "under 'loss'"
    elif isinstance(outputs, (tuple, list)) and outputs:
        loss = outputs[0]
        where = "as the first element of its tuple"
    elif isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
        return outputs
    else:
        raise ValueError(
            f"The model returned {_describe(outputs)}; Trainer needs a tuple whose first "
            "element is the loss, or a dict / ModelOutput with a 'loss' entry."
        )
    if require_scalar and not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
        raise ValueError(
            f"The model returned {_describe(loss)} {where}, but training needs the loss as "
            "a tensor holding one number (the batch's mean loss). Reduce a per-example loss "
            "(e.g. loss.mean()); if these are the model's logits, it computed no loss: "
            "check that the batch holds the labels it needs (args.label_names)."
        )
    return loss


def require_scalar_loss(loss: Any) -> None:
    """Refuse, before back-propagation, a ``compute_loss`` result that is not one number.

    Raises:
        ValueError: ``loss`` is not a tensor with exactly one element.
    """
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return
    raise ValueError(
        f"compute_loss returned {_describe(loss)}, but training back-propagates one number "
        "per batch: return the batch's mean loss as a tensor. A model returning a "
        "per-example loss needs it reduced (e.g. loss.mean()); a compute_loss_func or a "
        "compute_loss override must return a tensor, not None."
    )


def _describe(value: Any) -> str:
    """``value``'s type, and its shape when it is a tensor, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}" if value is not None else "None"
