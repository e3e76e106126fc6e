"""Refusing, before any work, the Trainer arguments users most often get wrong.

Each mistake here would otherwise surface late (at the first step, the first
evaluation or the first checkpoint, possibly hours in), deep inside torch with a message
that does not name the argument (``'torch.device' object has no attribute '_apply'``
for a model class passed instead of a model), or not at all: an optimizer built for
another model instance, or a scheduler whose optimizer the Trainer replaces, train with
no error and no effect. Every check only refuses what could not have worked; each
message says what was passed and how to fix it.

:func:`check_trainer_inputs` runs first thing in the constructor;
:func:`check_training_inputs` when ``train()`` starts, for what may still change after
construction (``trainer.eval_dataset = ...``, ``trainer.compute_metrics = ...``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import Event, TrainerCallback, best_metric_key
from trainer_loop._dataloader_options import has_length
from trainer_loop._optimizer_recipes import TORCH_NATIVE
from trainer_loop._optimizers import get_optimizer_cls_and_kwargs
from trainer_loop._schedulers import METRIC_DRIVEN_TYPES
from trainer_loop._trainer_setup import (
    PACKAGE_LOGGERS,
    check_eval_dataset,
    check_eval_dataset_kind,
    check_first_example,
    check_processing_class,
    missing_checkpointing_message,
    user_defines,
)

_EVENTS = tuple(event.value for event in Event)

# What an evaluation reports with no compute_metrics: the loss, speed and memory
# figures (see _evaluation_loop and the memory tracker), with the "eval_" prefix and,
# for a dict of eval datasets, the dataset's name.
_BUILT_IN_METRICS = (
    "loss",
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "model_preparation_time",
    "jit_compilation_time",
    "mem_",
    "epoch",
)

# Overrides that may report metrics of their own, so that a metric_for_best_model the
# built-in evaluation does not produce can still appear.
_EVALUATION_OVERRIDES = (
    "evaluate",
    "evaluation_loop",
    "prediction_loop",
    "_evaluate",
    "_maybe_log_save_evaluate",
)


def check_trainer_inputs(
    trainer: Any,
    model: Any,
    args: Any,
    data_collator: Any,
    train_dataset: Any,
    callbacks: Any,
    optimizers: Any,
    eval_dataset: Any = None,
) -> None:
    """Refuse constructor arguments that cannot work, before anything is built or written.

    Raises:
        TypeError: an argument of the wrong kind (a model class, a dict for ``args``, a
            collator that cannot be called, a callback that is not one, ...).
        ValueError: an optimizer or scheduler that would train nothing or follow no
            schedule.
        FileExistsError / NotADirectoryError: ``output_dir`` is, or lies under, a file.
    """
    check_model(model)
    check_args(args)
    check_not_on_meta(model, args)
    check_checkpointing_support(model, args)
    check_data_collator(data_collator)
    check_train_dataset(train_dataset)
    check_stream_length(train_dataset, args)
    check_eval_dataset_kind(eval_dataset)
    check_callbacks(callbacks)
    check_given_optimizers(trainer, model, optimizers)
    check_output_dir(args)


def check_training_inputs(trainer: Any) -> None:
    """The checks ``train()`` runs before the first step (see the module docstring)."""
    check_train_dataset_given(trainer)
    check_train_dataset(trainer.train_dataset)  # may be assigned since
    check_steps_to_train(trainer.args)
    check_eval_dataset_kind(trainer.eval_dataset)
    check_eval_dataset(trainer)
    check_first_example(trainer)
    check_processing_class(trainer.processing_class)  # may be assigned since
    check_float16_adam_epsilon(trainer)
    check_best_model_metric_set(trainer.args)
    check_best_metric_reachable(trainer)
    check_schedule_metric_named(trainer)
    check_best_metric_names_a_dataset(trainer)
    check_output_dir_writable(trainer.args)


# ------------------------------------------------------------------ model and args
def check_model(model: Any, what: str = "model") -> None:
    """Refuse a model class, a checkpoint name or a state dict where a model belongs;
    ``what`` names the value in the message (``model=``, or what ``model_init`` returned)."""
    if model is None or isinstance(model, nn.Module):
        return
    if isinstance(model, type):
        raise TypeError(
            f"{what} is the class {model.__name__}, not a model: use an instance, e.g. "
            f"{model.__name__}(config) or {model.__name__}.from_pretrained(name)."
        )
    if isinstance(model, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{what} is the name or path {os.fsdecode(model)!r}, not a model: load it first, "
            f"e.g. AutoModelForSequenceClassification.from_pretrained({os.fsdecode(model)!r}) "
            "(or the Auto class for your task)."
        )
    if not callable(getattr(model, "parameters", None)):
        hint = (
            " (a state dict? load it into a model with load_state_dict)"
            if isinstance(model, Mapping)
            else ""
        )
        raise TypeError(f"{what} must be a torch.nn.Module, got {type(model).__name__}{hint}.")


def check_not_on_meta(model: Any, args: Any) -> None:
    """Refuse a model whose weights are on the meta device (shapes, no values).

    Moving it to a device fails inside torch (``Cannot copy out of meta tensor``), and a
    model left in place fails at the first step. Left alone: a model dispatched by
    accelerate (``hf_device_map``: offloaded weights are loaded by hooks), and runs
    with FSDP or DeepSpeed, which may fill meta weights from another process (FSDP's
    ``cpu_ram_efficient_loading`` loads them on the first process only).
    """
    if not isinstance(model, nn.Module) or getattr(model, "hf_device_map", None):
        return
    if getattr(args, "fsdp", None) or getattr(args, "deepspeed", None):
        return
    tensors = (*model.named_parameters(), *model.named_buffers())
    on_meta = [name for name, tensor in tensors if tensor.is_meta]
    if not on_meta:
        return
    raise ValueError(
        f"model: {len(on_meta)} of its weights are on the meta device (e.g. {on_meta[0]!r}), "
        "which holds shapes but no values, as when a model is built under "
        "torch.device('meta') or accelerate's init_empty_weights(). Load real weights "
        "before passing it, e.g. model.to_empty(device='cpu') then "
        "model.load_state_dict(state_dict), or from_pretrained(...) without a meta "
        "device_map."
    )


def check_checkpointing_support(model: Any, args: Any) -> None:
    """Refuse ``gradient_checkpointing=True`` for a model that cannot turn it on, at
    construction rather than when ``train()`` starts (a model from ``model_init`` is
    checked then)."""
    if model is None or not getattr(args, "gradient_checkpointing", False):
        return
    if callable(getattr(model, "activation_checkpointing_enable", None)) or callable(
        getattr(model, "gradient_checkpointing_enable", None)
    ):
        return
    raise ValueError(missing_checkpointing_message(model))


def check_args(args: Any) -> None:
    """Refuse ``args`` that are not this package's TrainingArguments."""
    if isinstance(args, TrainingArguments):
        return
    if isinstance(args, Mapping):
        fix = "build them with TrainingArguments(**your_dict)"
    elif isinstance(args, (str, os.PathLike)):
        fix = f"for an output folder, pass TrainingArguments(output_dir={os.fspath(args)!r})"
    elif type(args).__module__.startswith("transformers."):
        fix = (
            "transformers' class does not fit this Trainer: import it from this package "
            "(`from trainer import TrainingArguments`), with the same fields"
        )
    else:
        fix = "create them with TrainingArguments(output_dir=..., ...)"
    raise TypeError(
        f"args must be a trainer.TrainingArguments, got {type(args).__module__}."
        f"{type(args).__qualname__}: {fix}."
    )


def check_output_dir(args: Any) -> None:
    """Refuse an ``output_dir`` that is a file or lies under a file (the reference fails
    there too, with the bare errno text)."""
    if args.output_dir is None:
        return
    path = os.path.abspath(os.fspath(args.output_dir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(
            f"output_dir={args.output_dir!r} is a file, not a folder: the Trainer writes "
            "checkpoints and results into that folder. Pass another path, or move the file."
        )
    ancestor = _nearest_existing(path)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(
            f"output_dir={args.output_dir!r} cannot be created: {ancestor!r} is a file. "
            "Pass a path whose parent folders are folders."
        )


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_dir_writable(args: Any) -> None:
    """When ``train()`` will save checkpoints, refuse an ``output_dir`` that cannot be
    written to; the reference finds out at the first save, after that much training.
    Checked at ``train()`` rather than construction: a Trainer built only to evaluate or
    predict may point at a read-only folder."""
    if args.output_dir is None:
        return
    if str(getattr(args.save_strategy, "value", args.save_strategy)) == "no":
        return
    ancestor = _nearest_existing(os.path.abspath(os.fspath(args.output_dir)))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(
            f"output_dir={args.output_dir!r}: {ancestor!r} is not writable, so no checkpoint "
            "could be saved. Pass a writable folder, or set save_strategy='no'."
        )


# ------------------------------------------------------------------------ data
def check_data_collator(data_collator: Any) -> None:
    """Refuse a collator that cannot be called, or a collator class given for an instance
    (calling the class would build a collator, not a batch)."""
    if data_collator is None:
        return
    if isinstance(data_collator, type) and _defines_call(data_collator):
        name = data_collator.__name__
        raise TypeError(
            f"data_collator is the class {name}, not a collator: pass an instance, e.g. "
            f"data_collator={name}(tokenizer)."
        )
    if not callable(data_collator):
        raise TypeError(
            f"data_collator must be a function from a list of examples to a batch, got "
            f"{type(data_collator).__name__}. Pass e.g. DataCollatorWithPadding(tokenizer), "
            "or leave it None for the default collator."
        )


def _defines_call(cls: type) -> bool:
    return any("__call__" in vars(base) for base in cls.__mro__ if base is not object)


def check_train_dataset(dataset: Any) -> None:
    """Refuse a dict of splits or of columns, or a string, given as the training set.

    A ``DatasetDict`` (``load_dataset(...)`` without ``split=``) or a dict of columns
    has a length but no example 0, so the first batch would fail with a ``KeyError``.
    A dict indexed by position (0, 1, ...) is a valid map-style dataset and is kept.
    """
    if isinstance(dataset, (str, bytes)):
        raise TypeError(
            "train_dataset is a string; load the data first (e.g. datasets.load_dataset(...)"
            "['train']) and tokenize it."
        )
    if not isinstance(dataset, Mapping) or len(dataset) == 0 or 0 in dataset:
        return
    keys = ", ".join(repr(key) for key in list(dataset)[:8])
    raise TypeError(
        f"train_dataset is a {type(dataset).__name__} with keys {keys}, not a dataset of "
        "examples: pass one split (e.g. train_dataset=dataset['train']), or turn columns "
        "into examples (e.g. datasets.Dataset.from_dict(columns))."
    )


def check_train_dataset_given(trainer: Any) -> None:
    """Refuse ``train()`` without a training set (unless a subclass builds the
    training DataLoader itself)."""
    if trainer.train_dataset is not None or user_defines(trainer, ("get_train_dataloader",)):
        return
    raise ValueError(
        "train() needs a training set, but the Trainer has no train_dataset. Pass "
        "train_dataset= to Trainer(...) (or assign trainer.train_dataset before train()); "
        "to only evaluate, call trainer.evaluate() instead of train()."
    )


def check_steps_to_train(args: Any) -> None:
    """Refuse ``train()`` that would run no step: ``num_train_epochs=0`` with no
    ``max_steps`` (the reference returns at once, reporting a loss of 0)."""
    if args.max_steps > 0 or args.num_train_epochs > 0:
        return
    raise ValueError(
        f"num_train_epochs={args.num_train_epochs!r} and max_steps={args.max_steps!r}: "
        "train() would run no step. Set num_train_epochs above 0 (fractions such as 0.5 "
        "are allowed) or max_steps to a positive number of steps; to only evaluate, call "
        "trainer.evaluate() instead of train()."
    )


def check_stream_length(dataset: Any, args: Any) -> None:
    """Refuse a training stream (no length) without ``max_steps``, as the reference does
    when it is built: the schedule needs the number of steps, and epochs of a stream
    cannot be counted. (``train()`` checks again, for a dataset assigned later.)"""
    if dataset is None or has_length(dataset) or getattr(args, "max_steps", -1) > 0:
        return
    raise ValueError(
        f"train_dataset ({type(dataset).__name__}) has no length, so the number of training "
        "steps cannot be derived from num_train_epochs: set max_steps to a positive number "
        "of optimizer steps in TrainingArguments."
    )


# ------------------------------------------------------------------- callbacks
def check_callbacks(callbacks: Any) -> None:
    """Refuse callbacks that no event would reach (they would be skipped silently).

    A callback may define only the events it needs, so anything with at least one
    event method (``on_log``, ...) is accepted, as is a class (instantiated later).
    """
    if callbacks is None:
        return
    if isinstance(callbacks, (TrainerCallback, type)) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"callbacks must be a list, got {type(callbacks).__name__}: pass "
            f"callbacks=[{_name(callbacks)}]."
        )
    if not isinstance(callbacks, (list, tuple)):
        return  # a one-shot iterable: reading it here would empty it
    for index, callback in enumerate(callbacks):
        check_callback(callback, f"callbacks[{index}]")


def check_callback(callback: Any, where: str) -> None:
    """Refuse one callback that no event would reach; ``where`` names it in the message."""
    if isinstance(callback, TrainerCallback) or (
        isinstance(callback, type) and issubclass(callback, TrainerCallback)
    ):
        return
    if any(callable(getattr(callback, event, None)) for event in _EVENTS):
        return
    hint = (
        f"; to report to a tracker, use TrainingArguments(report_to={callback!r})"
        if isinstance(callback, str)
        else ""
    )
    raise TypeError(
        f"{where} is {_name(callback)}, which has no callback method "
        "(on_log, on_step_end, ...): pass instances or subclasses of TrainerCallback"
        f"{hint}."
    )


def _name(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, str):
        return repr(value)
    return f"{type(value).__name__}()"


# ------------------------------------------------------------------ optimizers
def check_given_optimizers(trainer: Any, model: Any, optimizers: Any) -> None:
    """Refuse an ``optimizers=(optimizer, scheduler)`` pair that would not train ``model``
    on the schedule given.

    * a class instead of an instance;
    * an optimizer holding none of the model's parameters (built for another instance
      of the model, e.g. before a notebook cell re-created it): every step would
      update parameters the model does not use;
    * a scheduler without its optimizer: the Trainer would build its own optimizer and
      the scheduler would adjust the unused one (the logs would still show its rates);
      a subclass building the optimizer itself is left alone;
    * a scheduler built on another optimizer than the one given.

    A malformed tuple is left to ``check_optimizers``, which explains the shape.
    """
    if not isinstance(optimizers, (tuple, list)) or len(optimizers) != 2:
        return
    optimizer, scheduler = optimizers
    for position, value in (("optimizers[0]", optimizer), ("optimizers[1]", scheduler)):
        if isinstance(value, type):
            raise TypeError(
                f"{position} is the class {value.__name__}, not an instance: pass "
                f"{value.__name__}(...) built on the model (e.g. torch.optim.AdamW("
                "model.parameters(), lr=...)), or optimizer_cls_and_kwargs=(class, kwargs) "
                "to let the Trainer build the optimizer."
            )
    _check_optimizer_kinds(optimizer, scheduler)
    if optimizer is not None and isinstance(model, nn.Module):
        _check_optimizer_holds_model(optimizer, model)
    scheduled = _parameter_ids(getattr(scheduler, "optimizer", None))
    if scheduler is None or not scheduled:
        return
    if optimizer is None:
        if user_defines(trainer, ("create_optimizer", "create_optimizer_and_scheduler")):
            return
        raise ValueError(
            "optimizers=(None, scheduler): the Trainer would build its own optimizer, and "
            "the scheduler would keep adjusting the optimizer it was built on, which "
            "trains nothing (the logged learning rate would be the scheduler's, not the "
            "one in use). Pass both: optimizers=(scheduler.optimizer, scheduler)."
        )
    if not scheduled & _parameter_ids(optimizer):
        raise ValueError(
            "optimizers=(optimizer, scheduler): the scheduler was built on another "
            "optimizer, so the learning rate of the one training the model would never "
            "change. Build the scheduler on the optimizer you pass."
        )


def _check_optimizer_kinds(optimizer: Any, scheduler: Any) -> None:
    """Refuse a name or other value where an optimizer or a scheduler object belongs (it
    would fail only when training starts, on a missing ``param_groups``)."""
    if optimizer is not None and not (
        hasattr(optimizer, "param_groups") and callable(getattr(optimizer, "step", None))
    ):
        raise TypeError(
            f"optimizers[0] is {_name(optimizer)}, not an optimizer: pass one built on the "
            "model (e.g. torch.optim.AdamW(model.parameters(), lr=...)), or None and name "
            "it in TrainingArguments(optim=...), e.g. optim='adamw_torch'."
        )
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(
            f"optimizers[1] is {_name(scheduler)}, not a learning-rate scheduler: pass one "
            "built on the optimizer (e.g. torch.optim.lr_scheduler.LambdaLR(optimizer, ...)), "
            "or None and name it in TrainingArguments(lr_scheduler_type=...), e.g. 'cosine'."
        )


FLOAT16_ZERO_EPSILON = 2.0**-25
"""The largest Adam epsilon float16 rounds to 0: half the smallest positive float16
number (2**-24 ≈ 5.96e-8, a subnormal), ≈ 2.98e-8; the default 1e-8 is below it. With
the epsilon 0, torch's AdamW divides by 0 wherever a gradient is 0 (or so small that its
square underflows: below about 5e-3 with beta2=0.999), and the weight becomes NaN at the
first step. Any larger epsilon is held as at least 2**-24 and keeps the update finite
(checked with torch 2.x on CPU: 1e-8 and 2.98e-8 give NaN, 2.99e-8 and 6e-8 do not)."""

_OPTIMIZER_OVERRIDES = (
    "create_optimizer",
    "create_optimizer_and_scheduler",
    "get_optimizer_cls_and_kwargs",
)


def check_float16_adam_epsilon(trainer: Any) -> None:
    """Refuse training float16 weights with the AdamW ``args.optim`` builds when float16
    rounds its epsilon to 0 (see ``FLOAT16_ZERO_EPSILON``).

    Only what NaNs for certain is refused: torch's unfused AdamW (``adamw_torch``,
    ``adamw_hf``), which computes the update in the weights' dtype, built by the Trainer.
    ``adamw_torch_fused`` computes it in float32 and trains such weights; bfloat16
    weights hold an epsilon of 1e-8; an optimizer passed in ``optimizers=``, built by
    an override, or by DeepSpeed is the user's (or DeepSpeed's) choice.

    Raises:
        ValueError: naming the epsilon and the three ways out.
    """
    if trainer.optimizer is not None or trainer.optimizer_cls_and_kwargs is not None:
        return
    args = trainer.args
    name = "adafactor" if args.adafactor else str(getattr(args.optim, "value", args.optim))
    if args.deepspeed or name not in TORCH_NATIVE or user_defines(trainer, _OPTIMIZER_OVERRIDES):
        return
    model = trainer.model  # None in a search trial's copy, until model_init rebuilds it
    if model is None or not any(
        p.requires_grad and p.dtype == torch.float16 for p in model.parameters()
    ):
        return
    optimizer_cls, kwargs = get_optimizer_cls_and_kwargs(args)
    eps = kwargs.get("eps", 1.0)
    if optimizer_cls is not torch.optim.AdamW or kwargs.get("fused") or eps > FLOAT16_ZERO_EPSILON:
        return
    setting = f"adam_epsilon={eps!r}" if eps == args.adam_epsilon else f"optim_args eps={eps!r}"
    raise ValueError(
        f"The model has trainable float16 weights, and optim={name!r} (torch's AdamW) "
        f"would update them in float16 with {setting}, which float16 rounds to 0 (as any "
        "epsilon up to 2**-25 ≈ 3e-8): every weight whose gradient is 0 would turn into "
        "NaN at the first step. Keep the model in float32 and pass fp16=True (or "
        "bf16=True) for mixed precision; or raise the epsilon, e.g. adam_epsilon=1e-4; or "
        "use optim='adamw_torch_fused', which computes the update in float32."
    )


def check_functions(**functions: Any) -> None:
    """Refuse a ``compute_metrics``, ``model_init``, ... that cannot be called (a metric's
    name, say): it would fail only at the first evaluation, or when training starts."""
    model_init = functions.get("model_init")
    if isinstance(model_init, nn.Module):
        raise TypeError(
            f"model_init is a model ({type(model_init).__name__}), not a function that "
            "builds one: pass it as model=..., or pass model_init=lambda: "
            f"{type(model_init).__name__}(...) to build a fresh model for each run."
        )
    for name, function in functions.items():
        if function is not None and not callable(function):
            hint = (
                " (to compute a named metric, wrap it: e.g. evaluate.load(name).compute "
                "inside a function of the EvalPrediction)"
                if isinstance(function, str)
                else ""
            )
            raise TypeError(
                f"{name} must be a function, got {_name(function)}{hint}. Pass a callable, "
                f"or leave {name} None."
            )


def _check_optimizer_holds_model(optimizer: Any, model: nn.Module) -> None:
    held = _parameter_ids(optimizer)
    own = {id(parameter) for parameter in model.parameters()}
    if not held or not own or held & own:
        return
    raise ValueError(
        f"The optimizer passed in optimizers= holds none of the parameters of the "
        f"{type(model).__name__} given as model (it was built for another instance, "
        "perhaps before the model was re-created), so training would not change the "
        "model. Build it on this model, e.g. torch.optim.AdamW(model.parameters(), lr=...)."
    )


def _parameter_ids(optimizer: Any) -> set[int]:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)):
        return set()
    return {id(p) for group in groups if isinstance(group, Mapping) for p in group["params"]}


# --------------------------------------------------------------------- metrics
def check_best_model_metric_set(args: Any) -> None:
    """Refuse best-model tracking switched on after the arguments were built with no
    metric to track.

    Construction fills or asks for ``metric_for_best_model``; a script that sets
    ``load_best_model_at_end`` or ``save_strategy="best"`` afterwards skips that, and
    would otherwise train without saving or loading any best model.

    Raises:
        ValueError: best-model tracking is on and ``metric_for_best_model`` is None.
    """
    if args.metric_for_best_model is not None:
        return
    wanted = []
    if args.load_best_model_at_end:
        wanted.append("load_best_model_at_end=True")
    if str(getattr(args.save_strategy, "value", args.save_strategy)) == "best":
        wanted.append('save_strategy="best"')
    if wanted:
        raise ValueError(
            f"{' and '.join(wanted)} needs metric_for_best_model, which is None (the "
            "setting was changed after the arguments were built). Set "
            "metric_for_best_model, e.g. 'loss' or a key compute_metrics returns."
        )


def check_best_metric_reachable(trainer: Any) -> None:
    """Refuse a ``metric_for_best_model`` no evaluation of this run can report.

    Without ``compute_metrics`` an evaluation reports only the loss and speed and memory
    figures, so ``metric_for_best_model="accuracy"`` would stop training with a
    ``KeyError`` at the first evaluation. Evaluation overrides and callbacks that act on
    ``on_evaluate`` may add metrics, so they turn the check off.

    Raises:
        ValueError: the metric cannot appear in this run's evaluations.
    """
    args = trainer.args
    metric = args.metric_for_best_model
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    if metric is None or strategy == "no" or trainer.compute_metrics is not None:
        return
    bare = metric.removeprefix("eval_")
    if any(part in bare for part in _BUILT_IN_METRICS):
        return
    if user_defines(trainer, _EVALUATION_OVERRIDES) or _callbacks_may_add_metrics(trainer):
        return
    raise ValueError(
        f"metric_for_best_model={metric!r}, but the Trainer has no compute_metrics, so its "
        "evaluations report only eval_loss and speed figures and training would stop at "
        "the first evaluation. Pass compute_metrics= a function returning "
        f"{{{bare!r}: value}}, or set metric_for_best_model='loss'."
    )


def check_schedule_metric_named(trainer: Any) -> None:
    """Refuse a schedule stepped on a metric (``reduce_lr_on_plateau``, ``greedy``) with a
    dict of evaluation datasets and a metric that names none of them.

    Each dataset's figures are reported as ``eval_<name>_<metric>``, so a schedule
    following ``eval_loss`` (the default) would stop training at the first evaluation.

    Raises:
        ValueError: no metric names which dataset's figure the schedule follows.
    """
    args = trainer.args
    if trainer.lr_scheduler is not None:  # given through optimizers=
        stepped_on_metrics = trainer._scheduler_needs_metrics()
    else:
        stepped_on_metrics = args.lr_scheduler_type in METRIC_DRIVEN_TYPES
    if not stepped_on_metrics or not _reports_per_dataset(trainer):
        return
    key = best_metric_key(args.metric_for_best_model or "loss")
    if _names_a_dataset(key, trainer.eval_dataset):
        return
    datasets = trainer.eval_dataset
    first = next(iter(datasets))
    raise ValueError(
        f"The learning-rate schedule steps on an evaluation metric ({key!r}), but "
        f"eval_dataset holds several datasets ({', '.join(map(str, datasets))}), each "
        "reported under its own name. Set metric_for_best_model to the one to follow, "
        f"e.g. metric_for_best_model='eval_{first}_loss'."
    )


def check_best_metric_names_a_dataset(trainer: Any) -> None:
    """Refuse a ``metric_for_best_model`` that names none of several evaluation datasets.

    With ``eval_dataset`` a dict, each dataset is evaluated on its own and its figures
    are reported as ``eval_<name>_<metric>`` (as the reference names them), so the best
    model (``load_best_model_at_end``, ``save_strategy="best"``, early stopping: all
    track ``metric_for_best_model``) could not be found under ``eval_loss``, the default,
    and training would stop at the first evaluation.

    Raises:
        ValueError: naming the metrics each dataset reports and the name to set.
    """
    metric = trainer.args.metric_for_best_model
    if metric is None or not _reports_per_dataset(trainer):
        return
    key = best_metric_key(metric)
    datasets = trainer.eval_dataset
    if _names_a_dataset(key, datasets):
        return
    bare = key.removeprefix("eval_")
    first = next(iter(datasets))
    reported = ", ".join(f"eval_{name}_{bare}" for name in datasets)
    raise ValueError(
        f"metric_for_best_model={metric!r}, but eval_dataset holds several datasets, each "
        f"evaluated on its own: the evaluations report {reported}, and no {key!r}, so "
        "training would stop at the first evaluation. Set metric_for_best_model to the "
        f"dataset's metric to follow, e.g. metric_for_best_model='{first}_{bare}' (or "
        f"'eval_{first}_{bare}')."
    )


def _reports_per_dataset(trainer: Any) -> bool:
    """Whether evaluations during training report each dataset of a dict of evaluation
    datasets under its own name, and nothing else could add the plain metric (an
    evaluation override, or a callback acting on ``on_evaluate``)."""
    datasets = trainer.eval_dataset
    if not isinstance(datasets, Mapping) or not datasets:
        return False
    strategy = str(getattr(trainer.args.eval_strategy, "value", trainer.args.eval_strategy))
    if strategy == "no" or user_defines(trainer, _EVALUATION_OVERRIDES):
        return False
    return not _callbacks_may_add_metrics(trainer)


def _names_a_dataset(key: str, datasets: Mapping[Any, Any]) -> bool:
    return any(key.startswith(f"eval_{name}_") for name in datasets)


def _callbacks_may_add_metrics(trainer: Any) -> bool:
    """Whether a callback from outside this project (or transformers) acts on
    ``on_evaluate``, where it could add to the metrics."""
    base = TrainerCallback.on_evaluate
    for callback in trainer.callback_handler.callbacks:
        if "on_evaluate" in getattr(callback, "__dict__", {}):
            return True
        method = getattr(type(callback), "on_evaluate", None)
        if method is None or method is base:
            continue
        package = (getattr(method, "__module__", None) or "").partition(".")[0]
        if package not in PACKAGE_LOGGERS and package != "transformers":
            return True
    return False
