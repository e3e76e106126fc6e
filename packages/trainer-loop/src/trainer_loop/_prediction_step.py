"""The built-in ``prediction_step``: one batch's loss, outputs and labels, no gradients.

:class:`PredictionStep` takes once per evaluation loop the decisions the reference
takes once per batch: which output keys to leave out, how labels are read, whether the
forward needs an autocast context, and whether the batch can go straight to the model.
That last shortcut is taken when a Trainer overrides none of ``_prepare_inputs``,
``compute_loss``, ``compute_loss_context_manager`` and ``autocast_smart_context_manager``
(on its class or on the instance) and uses no label smoothing, ``compute_loss_func`` or
``past_index``, and its model does not read ``num_items_in_batch``: then
``compute_loss`` would only call the model and read its loss, which the step does
itself. Any override gets the full path, so it runs exactly as documented.

Loss code of the user's that reads ``num_items_in_batch`` (``compute_loss_func``, an
overridden ``compute_loss``, a model of the user's own) gets each batch's labelled-item
count, as in training and in the reference. A model that returns a loss without labels
(``return_loss=True`` in its ``forward``: CLIP, PatchTSMixer) has its loss computed when
there are no label names, with ``()`` as the labels, as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import torch

from trainer_loop._inputs import call_model, move_to_device
from trainer_loop._loss_scaling import loss_code_reads_count
from trainer_loop._model_outputs import loss_from_outputs

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

# The methods a prediction step goes through; overriding any disables the shortcut.
_STEP_CHAIN = (
    "_prepare_inputs",
    "compute_loss",
    "compute_loss_context_manager",
    "autocast_smart_context_manager",
)
_CONTEXTS = ("compute_loss_context_manager", "autocast_smart_context_manager")


class PredictionStep:
    """The built-in ``prediction_step``, with what does not change between batches
    decided once (see the module docstring).

    Args:
        trainer: The Trainer whose model and settings are used.
        ignore_keys: Output keys to leave out; None means the model config's default.
    """

    def __init__(self, trainer: Trainer, ignore_keys: list[str] | None) -> None:
        self.trainer = trainer
        self.ignore_keys = ignore_keys
        self._model, self._in_train = trainer.model, trainer.is_in_train
        self.label_names = list(trainer.label_names)
        self._one_label = self.label_names[0] if len(self.label_names) == 1 else None
        self.ignore = _ignore_set(trainer, ignore_keys)
        self._ignore_with_loss = self.ignore | {"loss"}
        args = trainer.args
        full_eval = full_eval_dtype(args) is not None and not trainer.is_in_train
        self._needs_autocast = not (full_eval or _autocast_is_noop(trainer))
        self._past_index = args.past_index
        self._can_return_loss = bool(trainer.can_return_loss)
        self._counts = bool(getattr(trainer, "_count_goes_to_compute_loss", False)) and (
            loss_code_reads_count(trainer)
        )
        self.direct = _can_go_direct(trainer) and not self._counts
        device = trainer.runtime.device
        self._move_to = device if self.direct and device.type != "cpu" else None

    def serves(self, trainer: Trainer, ignore_keys: list[str] | None) -> bool:
        """Whether this step's decisions hold for a call with these arguments."""
        return (
            trainer is self.trainer
            and ignore_keys is self.ignore_keys
            and trainer.model is self._model
            and trainer.is_in_train == self._in_train
            # keys_to_ignore_at_inference may have been set on the config since
            and (ignore_keys is not None or _ignore_set(trainer, None) == self.ignore)
        )

    def __call__(
        self, model: Any, inputs: dict[str, Any], loss_only: bool
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """``(loss, logits, labels)`` of one batch; ``(loss, None, None)`` when
        ``loss_only``. The loss is a detached scalar (a per-sample or per-device loss is
        averaged), None when the batch has no labels."""
        if torch.is_grad_enabled():  # a direct call; the loop runs under no_grad already
            with torch.no_grad():
                return self(model, inputs, loss_only)
        if not self.direct:
            inputs = self.trainer._prepare_inputs(inputs)
        elif self._move_to is not None:
            inputs = move_to_device(inputs, self._move_to)
        labels = self._labels(inputs)
        with_loss = labels is not None
        if not with_loss and self._loss_without_labels(inputs):
            with_loss, labels = True, ()
        if not self._needs_autocast:
            loss, logits = self._forward(model, inputs, with_loss, loss_only)
        else:
            with self.trainer.compute_loss_context_manager():
                loss, logits = self._forward(model, inputs, with_loss, loss_only)
        if loss_only:
            return loss, None, None
        return loss, logits, labels

    def for_loop(self, loss_only: bool) -> Callable[[Any, Any], tuple[Any, Any, Any]]:
        """This step as the evaluation loop calls it: ``(model, batch) -> (loss, logits,
        labels)`` with ``loss_only`` bound, the caller being under ``no_grad`` already.

        On the shortcut (see the module docstring) without autocast and with at most one
        label name, that is one closure holding every decision; otherwise it calls this
        object.
        """
        if not self.direct or self._needs_autocast or len(self.label_names) > 1:
            return lambda model, inputs: self(model, inputs, loss_only)
        label, move_to, without_labels = self._one_label, self._move_to, self._loss_without_labels
        ignore, ignore_with_loss = self.ignore, self._ignore_with_loss

        def direct_step(model: Any, inputs: Any) -> tuple[Any, Any, Any]:
            if move_to is not None:
                inputs = move_to_device(inputs, move_to)
            labels = inputs.get(label) if label is not None else None
            if labels is None and label is None and without_labels(inputs):
                labels = ()
            elif labels is None:
                outputs = call_model(model, inputs)
                return None, None if loss_only else logits_of(outputs, ignore), None
            outputs = call_model(model, inputs)
            loss = loss_from_outputs(outputs, require_scalar=False)
            if loss.requires_grad:
                loss = loss.detach()
            if loss.ndim:  # a per-sample or per-device loss
                loss = loss.mean()
            if loss_only:
                return loss, None, None
            return loss, logits_of(outputs, ignore_with_loss), labels

        return direct_step

    def _loss_without_labels(self, inputs: Mapping[str, Any]) -> bool:
        """Whether a batch without labels still has its loss computed: only when there are
        no label names, by the batch's ``return_loss``, else the forward's default."""
        if self.label_names:
            return False
        asked = inputs.get("return_loss")
        return bool(self._can_return_loss if asked is None else asked)

    def _labels(self, inputs: Mapping[str, Any]) -> Any:
        """The batch's labels (a tuple for several names); None unless all are present."""
        if self._one_label is not None:
            return inputs.get(self._one_label)
        names = self.label_names
        if not names or any(inputs.get(name) is None for name in names):
            return None
        return tuple(inputs[name] for name in names)

    def _forward(
        self, model: Any, inputs: dict[str, Any], with_loss: bool, loss_only: bool
    ) -> tuple[torch.Tensor | None, Any]:
        if with_loss:
            if self.direct:
                outputs = call_model(model, inputs)
                loss = loss_from_outputs(outputs, require_scalar=False)
            elif self._counts:
                count = self.trainer._loss_items(inputs)
                loss, outputs = self.trainer.compute_loss(
                    model, inputs, return_outputs=True, num_items_in_batch=count
                )
            else:
                loss, outputs = self.trainer.compute_loss(model, inputs, return_outputs=True)
            if loss.requires_grad:
                loss = loss.detach()
            if loss.ndim:  # a per-sample or per-device loss
                loss = loss.mean()
            return loss, None if loss_only else logits_of(outputs, self._ignore_with_loss)
        outputs = call_model(model, inputs)
        if self._past_index >= 0:
            self.trainer._past = outputs[self._past_index - 1]
        return None, None if loss_only else logits_of(outputs, self.ignore)


def overrides(trainer: Trainer, names: tuple[str, ...]) -> bool:
    """Whether ``trainer``'s class or the instance itself replaces any of ``names``."""
    from trainer_loop._trainer import Trainer  # at run time: _trainer imports the loop

    cls, own = type(trainer), vars(trainer)
    return any(getattr(cls, name) is not getattr(Trainer, name) or name in own for name in names)


def _can_go_direct(trainer: Trainer) -> bool:
    """Whether ``compute_loss`` would only call the model and read its loss."""
    return (
        not overrides(trainer, _STEP_CHAIN)
        and getattr(trainer, "label_smoother", None) is None
        and getattr(trainer, "compute_loss_func", None) is None
        and trainer.args.past_index < 0
    )


def _autocast_is_noop(trainer: Trainer) -> bool:
    """Whether the forward's autocast context does nothing (so it need not be entered)."""
    return not overrides(trainer, _CONTEXTS) and (
        getattr(trainer.runtime, "mixed_precision", None) == "no"
    )


def full_eval_dtype(args: Any) -> torch.dtype | None:
    """The dtype ``fp16_full_eval`` / ``bf16_full_eval`` cast the model to, if any."""
    if args.fp16_full_eval:
        return torch.float16
    if args.bf16_full_eval:
        return torch.bfloat16
    return None


def _ignore_set(trainer: Trainer, ignore_keys: list[str] | None) -> frozenset[str]:
    """``ignore_keys``, or the model config's current default, as a set."""
    if ignore_keys is not None:
        return frozenset(ignore_keys)
    return frozenset(_ignored_at_inference(trainer))


def _ignored_at_inference(trainer: Trainer) -> list[str]:
    """The model config's ``keys_to_ignore_at_inference``; a config that does not say
    drops ``past_key_values`` (a cache, not a prediction), as the reference does."""
    config = getattr(trainer.runtime.unwrap_model(trainer.model), "config", None)
    if config is None:
        return []
    return list(getattr(config, "keys_to_ignore_at_inference", ["past_key_values"]))


def _collectable(value: Any) -> bool:
    """Whether ``value`` is a tensor or a non-empty container of tensors (joinable)."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return bool(value) and all(_collectable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_collectable(v) for v in value)
    return False


def logits_of(outputs: Any, ignore: AbstractSet[str]) -> Any:
    """The outputs other than the loss and the ignored keys (one, or a tuple of them).

    A tuple output drops its first element when it holds the loss (``"loss"`` ignored).
    Outputs that are neither tensors nor containers of tensors (a generation cache
    object, strings) cannot be joined across batches and are left out.
    """
    if isinstance(outputs, (dict, Mapping)):  # dict first: skips the ABC check
        values = [
            v
            for k, v in outputs.items()
            if k not in ignore and (isinstance(v, torch.Tensor) or _collectable(v))
        ]
    elif isinstance(outputs, (tuple, list)):
        kept = outputs[1:] if "loss" in ignore else outputs
        values = tuple(v for v in kept if _collectable(v))
    else:
        values = (outputs,)
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)
