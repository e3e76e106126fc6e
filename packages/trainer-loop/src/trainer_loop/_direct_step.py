"""The loop's shortcut through ``training_step`` when nothing in that chain is customised.

The reference routes every micro-batch through ``training_step`` -> ``compute_loss`` and
the context managers around them, re-deciding at each step what is fixed for the whole
run (label smoothing, a custom loss function, DataParallel averaging, ``past_index``,
which signature an override uses). On small models that indirection is a measurable
share of a step. When a Trainer overrides none of those methods and uses none of those
features, the loop calls the closure built here instead: the same forward, loss and
backward, with every decision taken once, when the run starts.

A subclass or an instance that replaces any method of the chain always gets the full
path, so overrides keep working exactly as documented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainer_loop._inputs import call_model, move_to_device
from trainer_loop._model_outputs import loss_from_outputs

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

DirectStep = Callable[[Any], torch.Tensor]

# The methods one micro-step goes through; overriding any of them disables the shortcut.
_STEP_CHAIN = (
    "training_step",
    "compute_loss",
    "compute_loss_context_manager",
    "autocast_smart_context_manager",
    "_prepare_inputs",
    "_call_training_step",
    "_compute_loss_for_step",
)


def build_direct_step(trainer: Trainer, model: nn.Module) -> DirectStep | None:
    """A closure doing one un-accumulated micro-step, or None when the full path is needed.

    The closure takes a batch and returns the detached loss after back-propagating it,
    like ``training_step`` with ``num_items_in_batch=None`` and no accumulation window.
    """
    if not _uses_default_step_chain(trainer) or _needs_full_step(trainer):
        return None
    runtime = trainer.runtime
    autocast, backward = runtime.autocast, runtime.backward
    device = runtime.device
    move = device.type != "cpu"  # on the CPU every tensor already is where it must be

    def direct_step(inputs: Any) -> torch.Tensor:
        if not model.training:
            model.train()
        if move:
            inputs = move_to_device(inputs, device)
        with autocast():
            outputs = call_model(model, inputs)
        loss = loss_from_outputs(outputs)
        backward(loss)
        return loss.detach()

    return direct_step


def _uses_default_step_chain(trainer: Trainer) -> bool:
    from trainer_loop._trainer import Trainer

    cls = type(trainer)
    instance_attributes = vars(trainer)
    return all(
        getattr(cls, name) is getattr(Trainer, name) and name not in instance_attributes
        for name in _STEP_CHAIN
    )


def _needs_full_step(trainer: Trainer) -> bool:
    """Features whose handling lives in ``compute_loss`` / ``training_step`` only."""
    return (
        trainer.label_smoother is not None
        or trainer.compute_loss_func is not None
        or trainer.args.past_index >= 0
        or trainer._data_parallel
    )


def gradient_resetter(model: nn.Module, parameters: list[nn.Parameter]) -> Callable[[], None]:
    """``model.zero_grad(set_to_none=True)``, over a parameter list taken once per run.

    ``Module.zero_grad`` walks the module tree on every call (~10 us on a four-layer
    model, more on deep ones); dropping the gradients of a list is the same effect.
    Modules that define their own ``zero_grad`` (engines, wrappers) keep theirs.
    """
    if type(model).zero_grad is not nn.Module.zero_grad:
        return lambda: model.zero_grad(set_to_none=True)

    def drop_gradients() -> None:
        for parameter in parameters:
            parameter.grad = None

    return drop_gradients
