"""The ``Trainer`` facade: the reference's public API, delegating to small helpers.

Every method the reference documents as overridable is a method here with the same
name and signature, so subclasses written for the reference keep working. The work
itself lives elsewhere: the loop in ``_training_loop``, evaluation in
``_evaluation_loop``, saving in ``_saving``, optimizers and schedulers in
``_optimizers`` / ``_schedulers``, data in ``_collators`` / ``_samplers`` / ``_columns``,
and device, precision and processes in the runtime (trainer-dist).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

import trainer_dist
from trainer_args import TrainingArguments
from trainer_core import (
    CallbackHandler,
    CheckpointStore,
    DefaultFlowCallback,
    EvalPrediction,
    PrinterCallback,
    ProgressCallback,
    Runtime,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainOutput,
)
from trainer_dist import build_runtime, enable_full_determinism, set_seed
from trainer_loop import _input_checks
from trainer_loop._batch_size_finder import find_executable_batch_size
from trainer_loop._collators import (
    DataCollatorWithPadding,
    default_data_collator,
    pads_sequences,
)
from trainer_loop._columns import (
    can_return_loss,
    default_label_names,
)
from trainer_loop._data_methods import DataMethods
from trainer_loop._evaluation_loop import EvaluationLoop
from trainer_loop._flops import can_estimate_flops, estimate_flops, forget_parameter_count
from trainer_loop._hp_search import HyperparameterSearchMethods
from trainer_loop._hub import HubMethods
from trainer_loop._inputs import (
    accepts_argument,
    call_model,
    count_loss_items,
    is_causal_lm,
    model_accepts_loss_kwargs,
    move_to_device,
)
from trainer_loop._jit_checkpoint import jit_checkpoint_callbacks
from trainer_loop._label_smoothing import label_smoother_for
from trainer_loop._loss_scaling import (
    count_reaches_user_code,
    declared_scaled,
    loss_is_normalised,
    passes_count_to_compute_loss,
)
from trainer_loop._memory_tracker import MemoryTracker
from trainer_loop._metrics_report import MetricsReportMethods
from trainer_loop._model_outputs import loss_from_outputs, require_scalar_loss
from trainer_loop._neftune import embedding_noise
from trainer_loop._optimizer_methods import OptimizerMethods
from trainer_loop._optimizers import (
    check_optimizer_cls_and_kwargs,
    create_optimizer,
    get_decay_parameter_names,
    get_optimizer_cls_and_kwargs,
)
from trainer_loop._reporters import resolve_reporters
from trainer_loop._resume import resolve_checkpoint
from trainer_loop._saving import CheckpointWriter, export_callback_states
from trainer_loop._schedulers import create_scheduler, metric_to_step_on, steps_on_metrics
from trainer_loop._special_tokens import align_special_tokens
from trainer_loop._speed_metrics import speed_metrics
from trainer_loop._subclass_hooks import SubclassHookMethods
from trainer_loop._trainer_setup import (
    apply_process_log_level,
    apply_use_cache,
    check_batch_metrics_signature,
    check_model_or_init,
    check_optimizers,
    enable_activation_checkpointing,
    evaluates_in_half_only,
    parameter_count,
    pick_processing_class,
    spreads_over_devices,
)
from trainer_loop._training_loop import TrainingLoop

logger = logging.getLogger(__name__)


class Trainer(
    DataMethods,
    HyperparameterSearchMethods,
    HubMethods,
    MetricsReportMethods,
    SubclassHookMethods,
    OptimizerMethods,
):
    """Train, evaluate and predict with a PyTorch model (the reference's ``Trainer``).

    Args mirror the reference. ``tokenizer`` is the reference's name of
    ``processing_class``; either may be given. ``runtime`` swaps the execution layer:
    any object satisfying :class:`trainer_core.Runtime` (built from ``args`` when None).
    ``checkpoint_store`` swaps how checkpoints are written and read: any object
    satisfying :class:`trainer_core.CheckpointStore` (trainer-checkpoint's folder store
    when None). ``optimizer_cls_and_kwargs`` (transformers 5) replaces the class and
    kwargs ``args.optim`` names; it cannot be combined with an ``optimizers`` optimizer.
    """

    # transformers 5's switch: whether compute_loss's loss is already divided by the
    # window's item count (None: the Trainer decides, see ``_loss_scaling``).
    loss_is_scaled_for_ga: bool | None = None

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable[[list[Any]], dict[str, Any]] | None = None,
        train_dataset: Dataset | IterableDataset | Any | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | Any | None = None,
        tokenizer: Any | None = None,
        model_init: Callable[..., nn.Module] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: list[TrainerCallback | type[TrainerCallback]] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
        *,
        processing_class: Any | None = None,
        compute_loss_func: Callable[..., torch.Tensor] | None = None,
        optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
        runtime: Runtime | None = None,
        checkpoint_store: CheckpointStore | None = None,
    ) -> None:
        if args is None:
            logger.info("No `TrainingArguments` passed, using `output_dir=tmp_trainer`.")
            args = TrainingArguments(output_dir="tmp_trainer")
        _input_checks.check_trainer_inputs(
            self, model, args, data_collator, train_dataset, callbacks, optimizers, eval_dataset
        )
        _input_checks.check_functions(
            model_init=model_init,
            compute_metrics=compute_metrics,
            preprocess_logits_for_metrics=preprocess_logits_for_metrics,
            compute_loss_func=compute_loss_func,
        )
        self.args = args
        self._memory_tracker = MemoryTracker(args.skip_memory_metrics)
        self._memory_tracker.start("init")
        apply_process_log_level(args)
        self.runtime = runtime if runtime is not None else build_runtime(args)
        self._runtime_from_args = runtime is None  # a search trial rebuilds it from its args
        self._seed_everything()
        self.hp_name: Callable[[Any], str] | None = None
        self.is_in_train = False
        self.model_init = model_init
        self.model = self._initial_model(model, model_init)
        self.processing_class = pick_processing_class(tokenizer, processing_class)
        self.data_collator = data_collator or self._default_collator()
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_metrics = compute_metrics
        check_batch_metrics_signature(args, compute_metrics)
        self.compute_loss_func = compute_loss_func
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.optimizer, self.lr_scheduler = check_optimizers(optimizers, model_init)
        self.optimizer_cls_and_kwargs = check_optimizer_cls_and_kwargs(
            optimizer_cls_and_kwargs, self.optimizer
        )
        self._created_lr_scheduler = False  # whether train() must build a new one
        self._setup_model_placement()
        self.label_smoother = label_smoother_for(self.model, args.label_smoothing_factor)
        # NEFTune's alpha, read by train(): the reference's attribute, which subclasses
        # read, and may set before train() to turn NEFTune on or off.
        self.neftune_noise_alpha = args.neftune_noise_alpha
        label_names = args.label_names  # [] means no labels, not the model's default
        if isinstance(label_names, str):  # one name, assigned after the arguments were built
            label_names = [label_names]
        self.label_names = list(
            default_label_names(self.model) if label_names is None else label_names
        )
        self.can_return_loss = can_return_loss(self.model)
        self._train_batch_size = args.train_batch_size
        if args.max_steps > 0 and args.num_train_epochs > 0:  # the reference's notice
            logger.info("max_steps is given, it will override any value given in num_train_epochs")
        # Micro-batches in the accumulation window being run (the reference's name:
        # training_step overrides copied from it divide by it).
        self.current_gradient_accumulation_steps = 1
        self._data_parallel = False
        self._signature_columns: list[str] | None = None
        self._setup_callbacks(callbacks)
        self.state = self._new_state()
        self.control = TrainerControl()
        # Listed from the start, as the reference does (save_state() before any train()).
        self.state.stateful_callbacks = export_callback_states(self)
        self.current_flos = 0
        self._initial_num_input_tokens_seen = 0  # set by each train() after any resume
        self._checkpoints = CheckpointWriter(self, checkpoint_store)
        self._resume_from: str | None = None  # the checkpoint train() resumes from
        self._train_sampler: Any = None  # the running loop's sampler (its state is saved)
        if self.args.push_to_hub:
            self.init_hf_repo()
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
        # compute_loss / training_step called before train() (tests, subclasses) read
        # these decisions too; train() takes them again for the model it prepares.
        self._bind_step_signatures(self.model)
        self.control = self.callback_handler.on_init_end(self.args, self.state, self.control)
        apply_use_cache(self.model, self.args.use_cache)
        self._memory_tracker.stop("init")

    # ------------------------------------------------------------- set-up
    def _seed_everything(self) -> None:
        if self.args.full_determinism:
            enable_full_determinism(self.args.seed)
        else:
            set_seed(self.args.seed)

    def _initial_model(
        self, model: nn.Module | None, model_init: Callable[..., Any] | None
    ) -> nn.Module:
        check_model_or_init(model, model_init)
        return model if model is not None else self.call_model_init()

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """Build a fresh model with ``model_init`` (passing ``trial`` if it takes one)."""
        if self.model_init is None:
            raise RuntimeError("call_model_init needs a `model_init` function.")
        takes_trial = parameter_count(self.model_init) >= 1
        model = self.model_init(trial) if takes_trial else self.model_init()
        if model is None:
            raise RuntimeError("`model_init` returned None: it must return a torch.nn.Module.")
        _input_checks.check_model(model, "the value model_init returned")
        return model

    def _default_collator(self) -> Callable[[list[Any]], Any]:
        if pads_sequences(self.processing_class):
            return DataCollatorWithPadding(self.processing_class)
        return default_data_collator

    def _setup_model_placement(self) -> None:
        self.is_model_parallel = spreads_over_devices(self.model)
        self.place_model_on_device = self.args.place_model_on_device and not self.is_model_parallel
        if self.place_model_on_device and not evaluates_in_half_only(self.args):
            self._move_model_to_device(self.model, self.runtime.device)
        self.model_wrapped = self.model

    def _setup_callbacks(self, callbacks: list[Any] | None) -> None:
        default: list[Any] = [DefaultFlowCallback, *resolve_reporters(self.args.report_to)]
        default += jit_checkpoint_callbacks(self)  # enable_jit_checkpoint: save on SIGTERM
        self.callback_handler = CallbackHandler(
            default + list(callbacks or []),
            self.model,
            self.processing_class,
            self.optimizer,
            self.lr_scheduler,
        )
        self.add_callback(PrinterCallback if self.args.disable_tqdm else ProgressCallback)

    def _new_state(self) -> TrainerState:
        return TrainerState(
            is_local_process_zero=self.is_local_process_zero(),
            is_world_process_zero=self.is_world_process_zero(),
        )

    @property
    def tokenizer(self) -> Any:
        """The reference's name of :attr:`processing_class`."""
        return self.processing_class

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self.processing_class = value

    # ---------------------------------------------------------- callbacks
    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        """Add a callback (a class is instantiated) to the current list."""
        _input_checks.check_callback(callback, "the callback given to add_callback")
        self.callback_handler.add_callback(callback)

    def pop_callback(
        self, callback: TrainerCallback | type[TrainerCallback]
    ) -> TrainerCallback | None:
        """Remove a callback (by class or instance) and return it; None if absent."""
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        """Remove a callback (by class or instance) from the current list."""
        self.callback_handler.remove_callback(callback)

    # ------------------------------------------------------------ process roles
    def is_local_process_zero(self) -> bool:
        """Whether this process is the main one of its machine."""
        return self.runtime.is_local_main_process

    def is_world_process_zero(self) -> bool:
        """Whether this process is the main one of all (rank 0)."""
        return self.runtime.is_main_process

    # The reference's flags, which subclasses test to take DeepSpeed / FSDP paths.
    @property
    def is_deepspeed_enabled(self) -> bool:
        """Whether a DeepSpeed engine trains the model."""
        return isinstance(self.runtime, trainer_dist.DeepSpeedRuntime)

    @property
    def is_fsdp_enabled(self) -> bool:
        """Whether torch FSDP shards the model."""
        return isinstance(self.runtime, trainer_dist.FSDPRuntime)

    @property
    def is_fsdp_xla_enabled(self) -> bool:
        """Whether PyTorch/XLA's FSDP shards the model."""
        return isinstance(self.runtime, trainer_dist.XlaFSDPRuntime)

    # ------------------------------------------------------ optimisation
    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        """Create the optimizer and scheduler unless they were passed to the constructor."""
        self.create_optimizer()
        # By keyword and without the optimizer, as the reference calls it: overrides
        # written as ``create_scheduler(self, num_training_steps)`` are common.
        self.create_scheduler(num_training_steps=num_training_steps)

    def _optimizer_for_training(self, max_steps: int) -> Any:
        """The optimizer the runtime asks for; a subclass overriding
        ``create_optimizer_and_scheduler`` builds both its way (``create_scheduler`` then
        returns the scheduler it made)."""
        if type(self).create_optimizer_and_scheduler is not Trainer.create_optimizer_and_scheduler:
            self.create_optimizer_and_scheduler(num_training_steps=max_steps)
            return self.optimizer
        return self.create_optimizer()

    def _scheduler_for_training(self, max_steps: int, optimizer: Any) -> Any:
        """``create_scheduler`` for the optimizer the runtime trains with, called as the
        reference calls it: ``num_training_steps`` by keyword, and the optimizer only when
        it is not ``self.optimizer`` (DeepSpeed's own), so that an override without an
        ``optimizer`` parameter still runs."""
        if optimizer is self.optimizer:
            return self.create_scheduler(num_training_steps=max_steps)
        return self.create_scheduler(num_training_steps=max_steps, optimizer=optimizer)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The optimizer from ``args.optim`` with weight decay on all but biases and norms,
        over ``model``'s parameters (``self.model`` when None), as in transformers 5."""
        model = self.model if model is None else model
        if self.optimizer is None:
            self.optimizer = create_optimizer(
                model,
                self.args,
                decay_parameter_names=self.get_decay_parameter_names(model),
                # the constructor's (transformers 5), else the one args describe
                optimizer_cls_and_kwargs=self.optimizer_cls_and_kwargs
                or self.get_optimizer_cls_and_kwargs(self.args, model),
            )
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """The learning-rate scheduler from ``args.lr_scheduler_type`` and the warmup.

        One built here is planned for this run's steps, so the next ``train()`` call
        builds a new one; a scheduler passed in ``optimizers=`` is kept.
        """
        if self.lr_scheduler is None:
            self.lr_scheduler = create_scheduler(
                self.args, self.optimizer if optimizer is None else optimizer, num_training_steps
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    @staticmethod
    def get_optimizer_cls_and_kwargs(
        args: TrainingArguments, model: nn.Module | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """The optimizer class and keyword arguments that ``args`` describe."""
        return get_optimizer_cls_and_kwargs(args, model)

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """Names of the parameters that receive weight decay (all but biases and norms)."""
        return get_decay_parameter_names(model)

    def _scheduler_needs_metrics(self) -> bool:
        return steps_on_metrics(self.lr_scheduler)  # ReduceLROnPlateau, GreedyLR

    def _get_learning_rate(self) -> float:
        if self._scheduler_needs_metrics():
            return float(self.optimizer.param_groups[0]["lr"])
        return float(self.lr_scheduler.get_last_lr()[0])

    # --------------------------------------------------------- loss / step
    def autocast_smart_context_manager(
        self, cache_enabled: bool | None = True
    ) -> contextlib.AbstractContextManager[None]:
        """The autocast context for forward passes under the configured precision."""
        return self.runtime.autocast()

    def compute_loss_context_manager(self) -> contextlib.AbstractContextManager[None]:
        """Context around every forward pass, training and evaluation alike: the
        ``autocast_smart_context_manager``, as the reference nests them (so overriding
        either changes both)."""
        return self.autocast_smart_context_manager()

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> Any:
        """The loss of one batch: the model's own, or label smoothing / ``compute_loss_func``."""
        labels = None
        loss_func = self.compute_loss_func
        if (self.label_smoother is not None or loss_func is not None) and "labels" in inputs:
            inputs = dict(inputs)
            labels = inputs.pop("labels")
        if num_items_in_batch is not None and self._model_takes_num_items:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        outputs = call_model(model, inputs)
        if self.args.past_index >= 0:
            self._past = outputs[self.args.past_index]
        if loss_func is not None:  # called without labels too: it may not need them
            if labels is None:
                _warn_labelless_loss_func()
            loss = loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        elif labels is not None:
            loss = self._smoothed_loss(model, outputs, labels)
        else:
            loss = loss_from_outputs(outputs, require_scalar=False)  # reduced later
        return (loss, outputs) if return_outputs else loss

    def _smoothed_loss(self, model: nn.Module, outputs: Any, labels: torch.Tensor) -> torch.Tensor:
        shift = getattr(self, "_loss_items_shifted", None)  # decided once per training run
        if shift is None:
            shift = is_causal_lm(self.runtime.unwrap_model(model))
        return self.label_smoother(outputs, labels, shift_labels=shift)  # type: ignore[misc]  # set when used

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Forward, loss and backward on one micro-batch; return the detached, scaled loss."""
        if not model.training:
            model.train()
        inputs = self._prepare_inputs(inputs)
        weight = (
            self._accumulation_weight(inputs, num_items_in_batch)
            if self.current_gradient_accumulation_steps != 1 or num_items_in_batch is not None
            else None
        )
        with self.compute_loss_context_manager():
            loss = self._compute_loss_for_step(model, inputs, num_items_in_batch)
        if self._data_parallel:
            loss = loss.mean()
        require_scalar_loss(loss)
        if weight is not None:
            loss = loss * weight
        self.runtime.backward(loss)
        return loss.detach()

    def _compute_loss_for_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items: Any
    ) -> torch.Tensor:
        if num_items is not None and self._count_goes_to_compute_loss:
            return self.compute_loss(model, inputs, num_items_in_batch=num_items)
        return self.compute_loss(model, inputs)

    def _accumulation_weight(self, inputs: Any, num_items: Any) -> Any:
        """The factor that makes a window's micro-batch gradients average over all its items.

        Taken before ``compute_loss`` runs, because an override may pop the labels.
        None means "leave the loss as it is" (no accumulation, or the loss is already
        divided by the window's item count: see ``_loss_scaling``).
        """
        window = self.current_gradient_accumulation_steps
        if num_items is None:
            return None if declared_scaled(self) else 1.0 / window
        # With average_tokens_across_devices, num_items counts every process's items and
        # gradient averaging across processes divides by their number, which this factor
        # undoes; without it, num_items is this process's own count (nothing to undo).
        processes = self.runtime.num_processes
        if not getattr(self.args, "average_tokens_across_devices", True):
            processes = 1
        if self._loss_is_normalised:
            return None if processes == 1 else float(processes)
        items = self._loss_items(inputs)
        if items is None:
            return 1.0 / window
        return items * processes / num_items if processes > 1 else items / num_items

    def _loss_items(self, inputs: Any) -> Any:
        """The labelled items one batch's loss averages over (shifted for causal language
        models), or None when the batch has no labels: see ``count_loss_items``."""
        return count_loss_items(inputs, self._loss_label_name, shifted=self._loss_items_shifted)

    def _call_training_step(
        self, model: nn.Module, inputs: Any, num_items: Any, window: int
    ) -> torch.Tensor:
        self.current_gradient_accumulation_steps = window
        if self._training_step_takes_num_items:
            return self.training_step(model, inputs, num_items)
        return self.training_step(model, inputs)

    def _prepare_input(self, data: Any) -> Any:
        """Move one input (a tensor, or a dict / list / tuple of them) to the device."""
        return move_to_device(data, self.runtime.device)

    def _prepare_inputs(self, inputs: Any) -> Any:
        """Move the batch to the device (a no-op for tensors already there)."""
        device = self.runtime.device
        if device.type != "cpu":  # on the CPU every tensor already is where it must be
            inputs = move_to_device(inputs, device)
        if self.args.past_index >= 0 and getattr(self, "_past", None) is not None:
            inputs["mems"] = self._past
        return inputs

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """FLOPs of one forward + backward on ``inputs`` (0 when the model cannot tell;
        transformers models are estimated: see ``trainer_loop._flops``)."""
        return estimate_flops(self.model, inputs)

    def _counts_flops(self) -> bool:
        """Whether FLOPs can be counted (an override or a model that can tell); asked once
        per run, which also recounts the model's parameters."""
        forget_parameter_count(self.model)
        overridden = type(self).floating_point_ops is not Trainer.floating_point_ops
        return overridden or can_estimate_flops(self.model)

    def store_flos(self) -> None:
        """Move the FLOPs counted since the last call into the state.

        Each process counted only its own batches, so with several the counts are
        summed: every process reaches the callers (logging, saving, the end of training).
        """
        flos = self.current_flos
        if self.runtime.num_processes > 1:
            counted = torch.tensor(float(flos), dtype=torch.float64, device=self.runtime.device)
            flos = float(self.runtime.reduce(counted, "sum").item())
        self.state.total_flos += flos
        self.current_flos = 0

    # ----------------------------------------------------------- training
    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> TrainOutput:
        """Run the training loop; return ``TrainOutput(global_step, training_loss, metrics)``."""
        if "model_path" in kwargs:
            resume_from_checkpoint = kwargs.pop("model_path")
            warnings.warn(
                "`model_path` is deprecated: use `resume_from_checkpoint`.",
                FutureWarning,
                stacklevel=2,
            )
        if kwargs:
            raise TypeError(
                f"train() got unexpected keyword arguments: {', '.join(sorted(kwargs))}."
            )
        if not self.args.auto_find_batch_size:  # else the size a search found is kept
            # Read again: scripts set the best trial's values on args before train().
            self._train_batch_size = self.args.train_batch_size
        self._hp_search_setup(trial)  # a search trial's values go into self.args first
        _input_checks.check_training_inputs(self)  # eval_dataset, metric_for_best_model
        check_batch_metrics_signature(self.args, self.compute_metrics)  # may be set since
        self._resume_from = resolve_checkpoint(self, resume_from_checkpoint)
        self._memory_tracker.start("train")
        self.is_in_train = True
        self._reinit_model_if_needed(trial)
        run = find_executable_batch_size(
            lambda batch_size: self._run_training_loop(batch_size, trial, ignore_keys_for_eval),
            self._train_batch_size,
            enabled=self.args.auto_find_batch_size,
        )
        try:
            with embedding_noise(self.model, self.neftune_noise_alpha):  # NEFTune
                return run()
        finally:  # the loop reports and stops the tracker; this only covers a failure
            self._memory_tracker.stop("train")

    def _run_training_loop(
        self, batch_size: int, trial: Any, ignore_keys: list[str] | None
    ) -> TrainOutput:
        """One training run (or ``auto_find_batch_size`` attempt) at ``batch_size``.

        A scheduler this Trainer built was planned for an earlier run's steps: it is built
        afresh, as in the reference. The optimizer, and a user's scheduler, are kept."""
        if self._created_lr_scheduler:
            self.lr_scheduler, self._created_lr_scheduler = None, False
        return TrainingLoop(self, batch_size).run(trial, ignore_keys)

    def _reinit_model_if_needed(self, trial: Any) -> None:
        if self.model_init is None:
            return
        self._seed_everything()
        self.model = self.call_model_init(trial)
        apply_use_cache(self.model, self.args.use_cache)
        if self.place_model_on_device:
            self._move_model_to_device(self.model, self.runtime.device)
        self.model_wrapped = self.model
        self.optimizer, self.lr_scheduler = None, None
        self.callback_handler.model = self.model

    def _prepare_for_training(self, max_steps: int) -> nn.Module:
        """Checkpointing, wrapping, optimizer and scheduler; return the model to train."""
        self._enable_gradient_checkpointing()
        align_special_tokens(self.model, self.processing_class)  # before any save or eval
        model = self.model
        # The runtime places the model (FSDP unit by unit, so never whole on one device)
        # and orders wrapping (and compiling) it and building the optimizer and
        # scheduler: FSDP shards before the optimizer exists; a DeepSpeed engine takes
        # all three at once and may build the optimizer or scheduler from its own config.
        model, self.optimizer, self.lr_scheduler = self.runtime.prepare_training(
            model,
            create_optimizer=lambda: self._optimizer_for_training(max_steps),
            create_scheduler=lambda optimizer: self._scheduler_for_training(max_steps, optimizer),
            num_training_steps=max_steps,
        )
        self.model_wrapped = model
        self._eval_model_cache = None  # prepared before training; evaluate the trained wrapper
        self._bind_step_signatures(model)
        handler = self.callback_handler
        handler.model, handler.optimizer, handler.lr_scheduler = (
            self.model,
            self.optimizer,
            self.lr_scheduler,
        )
        self.state.is_local_process_zero = self.is_local_process_zero()
        self.state.is_world_process_zero = self.is_world_process_zero()
        model.zero_grad(set_to_none=True)
        model.train()
        return model

    @property
    def model_accepts_loss_kwargs(self) -> bool:
        """Whether ``compute_loss`` hands the model the window's ``num_items_in_batch``.

        The reference's attribute, which overrides of ``training_step`` read to tell
        whether the loss is already divided by that count. Ours is the effective answer:
        a model is counted in only when it divides by the count (see
        ``model_accepts_loss_kwargs`` in ``_inputs``), not for any ``**kwargs``. Setting
        it (or a class attribute of that name) overrides the detection, as on the
        reference.
        """
        return self._model_takes_num_items

    @model_accepts_loss_kwargs.setter
    def model_accepts_loss_kwargs(self, accepts: bool) -> None:
        self.__dict__["_loss_kwargs_declared"] = bool(accepts)
        self._model_takes_num_items = bool(accepts)
        if "_loss_is_normalised" in self.__dict__:  # bound already: decide again
            self._decide_loss_scaling()

    def _declared_loss_kwargs(self) -> bool | None:
        """The user's ``model_accepts_loss_kwargs``: set on the instance or the class."""
        if isinstance(getattr(type(self), "model_accepts_loss_kwargs", None), property):
            return self.__dict__.get("_loss_kwargs_declared")
        value = getattr(self, "model_accepts_loss_kwargs", None)  # a subclass's attribute
        return None if value is None else bool(value)

    def _bind_step_signatures(self, model: nn.Module) -> None:
        """Decide once per run how the loop calls overridable methods (user overrides may
        use the reference's older signatures)."""
        self._training_step_takes_num_items = accepts_argument(
            self.training_step, "num_items_in_batch"
        )
        self._compute_loss_takes_num_items = accepts_argument(
            self.compute_loss, "num_items_in_batch"
        )
        declared = self._declared_loss_kwargs()
        self._model_takes_num_items = (
            model_accepts_loss_kwargs(self.runtime.unwrap_model(model))
            if declared is None
            else declared
        )
        self._loss_label_name = self.label_names[0] if self.label_names else None
        self._normalise_by_items = self._loss_label_name is not None
        self._loss_items_shifted = is_causal_lm(self.runtime.unwrap_model(model))
        self._decide_loss_scaling()
        self._data_parallel = self.args.n_gpu > 1  # DataParallel returns one loss per GPU

    def _decide_loss_scaling(self) -> None:
        """Fixed for the run (see ``_loss_scaling``): decided when the step's signatures
        are bound, or when ``model_accepts_loss_kwargs`` is set; never per micro-step."""
        self._count_goes_to_compute_loss = passes_count_to_compute_loss(self)
        self._loss_is_normalised = loss_is_normalised(self)
        self._count_every_window = count_reaches_user_code(self)

    def _enable_gradient_checkpointing(self) -> None:
        if not self.args.gradient_checkpointing:
            return
        enable_activation_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)

    def _train_output(
        self, global_step: int, training_loss: float, metrics: dict[str, float]
    ) -> TrainOutput:
        return TrainOutput(global_step, training_loss, metrics)

    # -------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Record ``logs`` in the state's history and send them to the callbacks.

        With ``include_num_input_tokens_seen``, a training log (one given the run's
        ``start_time``) also gets the run's ``train_runtime`` and
        ``train_tokens_per_second`` so far, as transformers 5 logs them.
        """
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        if self.args.include_num_input_tokens_seen:
            logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
            if start_time is not None:
                tokens = self.state.num_input_tokens_seen - self._initial_num_input_tokens_seen
                logs.update(speed_metrics("train", start_time, num_tokens=tokens))
        output = {**logs, "step": self.state.global_step}
        self.state.log_history.append(output)
        self.control = self.callback_handler.on_log(self.args, self.state, self.control, logs)

    # ------------------------------------------------------- evaluation
    def evaluate(
        self,
        eval_dataset: Any | dict[str, Any] | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Evaluate and return metrics prefixed with ``metric_key_prefix``."""
        return EvaluationLoop(self).evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def predict(
        self,
        test_dataset: Any,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "test",
    ) -> Any:
        """Predictions, labels and metrics on ``test_dataset`` (a ``PredictionOutput``)."""
        return EvaluationLoop(self).predict(test_dataset, ignore_keys, metric_key_prefix)

    def evaluation_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        """Run ``prediction_step`` over ``dataloader``; return an ``EvalLoopOutput``."""
        return EvaluationLoop(self).run(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )

    def prediction_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        """The reference's legacy loop: here the same loop as :meth:`evaluation_loop`."""
        return EvaluationLoop(self).run(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """``(loss, logits, labels)`` for one batch, without gradients."""
        return EvaluationLoop(self).prediction_step(
            model, inputs, prediction_loss_only, ignore_keys
        )

    def _evaluate_during_training(
        self, trial: Any, ignore_keys: list[str] | None
    ) -> dict[str, float]:
        if isinstance(self.eval_dataset, dict):
            metrics: dict[str, float] = {}
            for name, dataset in self.eval_dataset.items():
                # By keyword, as the reference calls it: overrides (the QA example's
                # evaluate(eval_dataset, eval_examples, ignore_keys, ...)) add parameters.
                metrics.update(
                    self.evaluate(
                        eval_dataset=dataset,
                        ignore_keys=ignore_keys,
                        metric_key_prefix=f"eval_{name}",
                    )
                )
        else:
            metrics = self.evaluate(ignore_keys=ignore_keys)
        self._report_to_hp_search(trial, self.state.global_step, metrics)
        if self._scheduler_needs_metrics():
            self.lr_scheduler.step(metric_to_step_on(metrics, self.args.metric_for_best_model))
        return metrics

    # ------------------------------------------------------------- saving
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model (and processing class) for ``from_pretrained`` / ``load_state_dict``.

        With ``push_to_hub``, a call from user code also pushes the folder to the Hub."""
        self._checkpoints.save_model(output_dir)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save")

    @property
    def checkpoint_store(self) -> CheckpointStore:
        """The store that writes, finds, rotates and loads this trainer's checkpoints."""
        return self._checkpoints.store

    def save_state(self) -> None:
        """Write ``trainer_state.json`` into ``output_dir`` (main process only)."""
        self._checkpoints.save_state()


@functools.cache
def _warn_labelless_loss_func() -> None:
    """Said once: a batch without labels still goes to ``compute_loss_func``."""
    logger.warning(
        "compute_loss_func is set but the batch holds no 'labels': it is called with "
        "labels=None (a loss that needs no labels is fine; otherwise check the collator "
        "and args.label_names)."
    )
