"""Whether a micro-batch's loss is already normalised over its accumulation window.

With gradient accumulation (or several processes) the Trainer hands ``compute_loss`` the
window's labelled-item count, ``num_items_in_batch``. A loss divided by that count must be
backpropagated as it is; a per-micro-batch mean must be weighted by its share of the
window's items. Getting this wrong multiplies or divides the gradients by the number of
micro-batches, so the decision follows where the loss came from:

- ``loss_is_scaled_for_ga`` set on the Trainer (transformers 5's attribute) decides;
- ``compute_loss_func`` receives the count, so its loss counts as normalised;
- an overridden ``compute_loss`` that takes ``num_items_in_batch`` gets the count when
  transformers would give it (see :func:`override_gets_count`), and its loss then counts
  as normalised; otherwise it gets None and its loss is weighted like a mean;
- the built-in ``compute_loss`` is normalised when the model divides by the count itself,
  unless label smoothing replaced the model's loss by a (mean) smoothed one.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from trainer_loop._trainer_setup import user_defines

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer


def forward_takes_loss_kwargs(model: Any) -> bool:
    """transformers' own test of whether a model is handed ``num_items_in_batch``: its
    ``accepts_loss_kwargs`` attribute, else a ``**kwargs`` in ``forward``.

    Looser than :func:`trainer_loop._inputs.model_accepts_loss_kwargs`, which asks
    whether the model really divides by the count; this one only decides what an
    overridden ``compute_loss`` receives, so that it receives what it would under
    transformers.
    """
    declared = getattr(model, "accepts_loss_kwargs", None)
    if declared is not None:
        return bool(declared)
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def compute_loss_is_overridden(trainer: Trainer) -> bool:
    """Whether a subclass replaced ``compute_loss`` (the Trainer's own is known exactly)."""
    from trainer_loop._trainer import Trainer

    return type(trainer).compute_loss is not Trainer.compute_loss


def override_gets_count(trainer: Trainer) -> bool:
    """Whether an overridden ``compute_loss`` taking ``num_items_in_batch`` is given the count.

    As under transformers: when the model accepts loss kwargs (or names the argument in
    ``forward``), when ``compute_loss_func`` is set, or when the subclass declares
    ``loss_is_scaled_for_ga = True``. A plain module's override gets None, so an override
    that ignores the count and returns a mean is weighted correctly.
    """
    if trainer.compute_loss_func is not None or declared_scaled(trainer) is True:
        return True
    model = trainer.runtime.unwrap_model(trainer.model)
    return trainer._model_takes_num_items or forward_takes_loss_kwargs(model)


def passes_count_to_compute_loss(trainer: Trainer) -> bool:
    """Whether ``compute_loss`` is called with the window's count (when there is one)."""
    if not trainer._compute_loss_takes_num_items:
        return False
    return not compute_loss_is_overridden(trainer) or override_gets_count(trainer)


def declared_scaled(trainer: Trainer) -> bool | None:
    """The subclass's ``loss_is_scaled_for_ga`` (None when it leaves the choice to us)."""
    declared = getattr(trainer, "loss_is_scaled_for_ga", None)
    return None if declared is None else bool(declared)


def loss_is_normalised(trainer: Trainer) -> bool:
    """Whether the loss ``compute_loss`` returned for a counted window is already a sum
    divided by ``num_items_in_batch`` (see the module docstring for the rules)."""
    declared = declared_scaled(trainer)
    if declared is not None:
        return declared
    if trainer.compute_loss_func is not None:
        return True
    if not passes_count_to_compute_loss(trainer):
        return False
    if compute_loss_is_overridden(trainer):
        return True
    return trainer._model_takes_num_items and trainer.label_smoother is None


def count_reaches_user_code(trainer: Trainer) -> bool:
    """Whether a window of one micro-batch needs its ``num_items_in_batch`` counted.

    The loop skips counting a lone micro-batch on one process: a loss divided by its own
    item count is its mean, so the built-in path and transformers' models (whose loss
    functions do exactly that) need no count. Code of the user's may use the number
    itself, and gets it as under the reference: an overridden ``training_step`` that
    takes it, and the loss code of :func:`loss_code_reads_count`.
    """
    if trainer._training_step_takes_num_items and user_defines(trainer, ("training_step",)):
        return True
    return loss_code_reads_count(trainer)


def loss_code_reads_count(trainer: Trainer) -> bool:
    """Whether loss code of the user's reads ``num_items_in_batch``: ``compute_loss_func``,
    an overridden ``compute_loss`` that is given it, or a model of the user's own that
    reads it. Evaluation hands them each batch's own count, as the reference does."""
    if trainer.compute_loss_func is not None:
        return True
    if compute_loss_is_overridden(trainer) and trainer._count_goes_to_compute_loss:
        return True
    if not trainer._model_takes_num_items:
        return False
    model = trainer.runtime.unwrap_model(trainer.model)
    if callable(getattr(model, "get_base_model", None)):  # a PEFT wrapper: ask its model
        model = model.get_base_model()
    return not type(model).__module__.startswith("transformers.")
