"""The Trainer's small optimizer queries, and switching an optimizer between modes.

:class:`OptimizerMethods` holds transformers 5's helpers ``get_learning_rates``,
``get_optimizer_group`` and ``get_num_trainable_parameters``; the Trainer inherits them.

:func:`set_optimizer_mode` serves schedule-free optimizers (``schedulefree``'s, and any
optimizer with callable ``train()`` / ``eval()`` methods). They keep the weights at a
point suited to taking gradients while training and move them to an averaged point for
evaluation, and refuse to step in the wrong mode. As in the reference, the training
loop puts the optimizer in train mode before every training step and the evaluation
loop puts it in eval mode before evaluating or predicting; nothing switches it when
training ends, so it stays in the mode of the last step or evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import nn

__all__ = ["OptimizerMethods", "mode_switch", "set_optimizer_mode"]


def mode_switch(optimizer: Any, mode: Literal["train", "eval"]) -> Callable[[], Any] | None:
    """The optimizer's ``train`` / ``eval`` method, or None when it has none (every torch
    optimizer, and ``None``): the training loop looks it up once per run."""
    switch = getattr(optimizer, mode, None)
    return switch if callable(switch) else None


def set_optimizer_mode(optimizer: Any, mode: Literal["train", "eval"]) -> None:
    """Call ``optimizer.train()`` or ``optimizer.eval()`` if the optimizer has it."""
    switch = mode_switch(optimizer, mode)
    if switch is not None:
        switch()


class OptimizerMethods:
    """Queries about the Trainer's optimizer and trainable parameters (transformers 5)."""

    model: nn.Module
    optimizer: Any

    def get_num_trainable_parameters(self) -> int:
        """How many parameter elements of ``self.model`` require gradients."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def get_learning_rates(self) -> list[float]:
        """The current learning rate of each of the optimizer's parameter groups.

        Raises:
            ValueError: No optimizer exists yet (it is made by ``train()`` or
                ``create_optimizer()``).
        """
        return [group["lr"] for group in self._existing_optimizer().param_groups]

    def get_optimizer_group(self, param: str | nn.Parameter | None = None) -> Any:
        """The optimizer's parameter group holding ``param``, else every group's params.

        Args:
            param: A parameter of the model, or its name in ``self.model``
                (``"encoder.layer.0.weight"``).

        Returns:
            The group (a dict, ``group["lr"]`` and so on) that holds ``param``. Without
            ``param``, or when no group holds it, the list of each group's parameter
            list, as the reference returns.

        Raises:
            ValueError: No optimizer exists yet.
        """
        optimizer = self._existing_optimizer()
        if isinstance(param, str):
            param = dict(self.model.named_parameters()).get(param)
        if param is not None:
            for group in optimizer.param_groups:
                # Identity, not ``in``: comparing tensors with == compares their values.
                if any(p is param for p in group["params"]):
                    return group
        return [group["params"] for group in optimizer.param_groups]

    def _existing_optimizer(self) -> Any:
        if self.optimizer is None:
            raise ValueError(
                "The Trainer has no optimizer yet: it is created when training starts. "
                "Call trainer.create_optimizer() first, or pass one in "
                "Trainer(optimizers=(optimizer, scheduler))."
            )
        return self.optimizer
