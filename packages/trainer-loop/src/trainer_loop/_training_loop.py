"""The inner training loop behind ``Trainer.train()``.

It is a separate object so that the Trainer stays a facade: this module owns the order
of events (the pseudocode in ``trainer_core.Event``), gradient accumulation and the
per-step bookkeeping, and calls back into the Trainer's overridable methods
(``training_step``, ``log``, ``evaluate``, ...) for everything a subclass may change.

Hot-path rules: nothing in a step forces a host-device synchronisation unless the user
asked for a log, an evaluation or a save at that step, or for a token count that needs
one to stay current for callbacks (see ``TrainingLoop._count_tokens``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import nullcontext
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch

from trainer_args import syncs_each_batch
from trainer_loop._direct_step import build_direct_step, gradient_resetter
from trainer_loop._inputs import accepts_argument
from trainer_loop._log_save_evaluate import OverrideCaller, evaluate_and_save
from trainer_loop._loss_tracker import LossTracker
from trainer_loop._module_queries import get_model_param_count
from trainer_loop._optimizer_methods import mode_switch
from trainer_loop._resume import open_epoch, prepare_resume
from trainer_loop._saving import export_callback_states
from trainer_loop._speed_metrics import speed_metrics
from trainer_loop._subclass_hooks import defines_batch_samples, defines_log_save_evaluate
from trainer_loop._token_counting import TokenCounter, counts_non_padding
from trainer_loop._training_plan import TrainingPlan, plan_training, resolve_interval

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)


def clip_threshold(max_grad_norm: float | None) -> float:
    """The norm gradients are clipped to: ``inf`` (measure only) when clipping is off.

    The norm is measured and logged (``grad_norm``) at every optimizer step even with
    ``max_grad_norm`` 0 or None, as transformers 5 does (earlier releases logged it
    only when clipping); clipping to ``inf`` leaves the gradients unchanged.
    """
    if max_grad_norm is None or max_grad_norm <= 0:
        return float("inf")
    return float(max_grad_norm)


class TrainingLoop:
    """One ``train()`` call at one batch size."""

    def __init__(self, trainer: Trainer, batch_size: int) -> None:
        self.trainer = trainer
        self.args = trainer.args
        self.batch_size = batch_size
        self.accumulation = self.args.gradient_accumulation_steps
        self.sync_each_batch = syncs_each_batch(self.args)
        self.tracker = LossTracker(filter_nan_inf=self.args.logging_nan_inf_filter)
        self.tokens_seen = 0  # this process's count known on the host (see TokenCounter)
        self.tokens_stale = False  # counted tokens the state's total does not include yet
        self.token_counter = TokenCounter(
            non_padding=counts_non_padding(self.args),
            pad_token_id=getattr(trainer.processing_class, "pad_token_id", None),
        )
        self.last_logged_step = 0
        self.grad_norm: torch.Tensor | None = None
        self.log_override: OverrideCaller | None = None
        self.start_time = 0.0
        # The rate the last optimizer step used, read before the scheduler moves on: what
        # the logs show, as in transformers 5 (v4.34 logged the next step's rate).
        self.step_learning_rate: float | None = None
        # (epoch, batches of it trained on): what a checkpoint of a stream records.
        self.data_position = (0, 0)

    # ----------------------------------------------------------------- set-up
    def _plan(self, dataloader: Any) -> TrainingPlan:
        trainer = self.trainer
        batches = len(dataloader) if trainer._has_length(dataloader) else None
        examples = trainer.num_examples(dataloader) if batches is not None else None
        return plan_training(
            self.args,
            batches_per_epoch=batches,
            num_examples=examples,
            batch_size=self.batch_size,
            step_batch_size=getattr(dataloader, "total_batch_size", None),
        )

    def _init_state(self, plan: TrainingPlan, trial: Any) -> None:
        trainer, args = self.trainer, self.args
        state = trainer._new_state()
        state.is_hyper_param_search = trial is not None
        state.trial_name, state.trial_params = trainer._trial_record(trial)
        state.train_batch_size = self.batch_size
        state.max_steps = plan.max_steps
        state.num_train_epochs = plan.num_train_epochs
        state.logging_steps = resolve_interval(args.logging_steps, plan.max_steps)
        if args.eval_steps is not None:  # else the state's default, as the reference
            state.eval_steps = resolve_interval(args.eval_steps, plan.max_steps)
        state.save_steps = resolve_interval(args.save_steps, plan.max_steps)
        # As the reference does, a fresh state already lists the callbacks' states, for
        # callbacks that read it before the first save (a resume loads the saved ones).
        state.stateful_callbacks = export_callback_states(trainer)
        trainer.state = state

    # ------------------------------------------------------------------- run
    def run(self, trial: Any = None, ignore_keys_for_eval: list[str] | None = None) -> Any:
        """Train to the end of the plan; return the reference's ``TrainOutput``."""
        trainer, args = self.trainer, self.args
        trainer._train_batch_size = self.batch_size
        dataloader = trainer.get_train_dataloader()
        trainer.callback_handler.train_dataloader = dataloader  # every event passes it on
        plan = self._plan(dataloader)
        self._init_state(plan, trial)
        model = trainer._prepare_for_training(plan.max_steps)
        self.model = model
        self.resume = prepare_resume(trainer, self, plan, dataloader)
        self.initial_global_step = trainer.state.global_step  # > 0 after a resume
        # Logged token rates count this run's tokens (transformers 5's attribute name).
        trainer._initial_num_input_tokens_seen = trainer.state.num_input_tokens_seen
        # Decided once per run rather than asked every step (the hot path).
        self.direct_step = build_direct_step(trainer, model)
        self.parameters = list(model.parameters())
        self.zero_grad = gradient_resetter(model, self.parameters)
        self.count_flops = trainer._counts_flops()
        self.count_tokens = args.include_num_input_tokens_seen or args.include_tokens_per_second
        # Callbacks read state.num_input_tokens_seen only when it is asked for; a token
        # rate alone needs the count at logs and at the end, not after each micro-batch.
        self.sync_tokens_each_batch = bool(args.include_num_input_tokens_seen)
        processes = trainer.runtime.num_processes
        # With several processes, losses are normalised by the items of all of them.
        self.count_items = processes > 1 and bool(
            getattr(args, "average_tokens_across_devices", True)
        )
        # transformers 5's get_batch_samples, when a subclass overrides it, draws each
        # window and counts its loss items (see _next_window).
        self.custom_windows = defines_batch_samples(trainer)
        self.window_items: Any = None
        trainer._training_loop = self  # what the default get_batch_samples draws with
        self.step_scheduler = not trainer._scheduler_needs_metrics()
        self.clip_norm = clip_threshold(args.max_grad_norm)
        self.empty_cache_every = getattr(args, "torch_empty_cache_steps", None)
        self.to_train_mode = mode_switch(trainer.optimizer, "train")  # schedule-free ones
        self.log_takes_start_time = accepts_argument(trainer.log, "start_time")  # not v4.34's
        self.ignore_keys_for_eval = ignore_keys_for_eval
        self.trial = trial
        # A subclass's _maybe_log_save_evaluate, called at every step as the reference does.
        if defines_log_save_evaluate(trainer):
            self.log_override = OverrideCaller(trainer, self)
        self._log_run_header(plan)

        start_time = self.start_time = time.time()
        trainer.control = trainer.callback_handler.on_train_begin(
            args, trainer.state, trainer.control
        )
        if args.eval_on_start:  # a quick check that evaluation works, before any step
            trainer._evaluate(trial, ignore_keys_for_eval, skip_scheduler=True)
        for epoch in range(self.resume.epoch if self.resume else 0, plan.num_train_epochs):
            self._run_epoch(epoch, dataloader, plan)
            if trainer.control.should_training_stop:
                break
        return self._finish(plan, start_time)

    def _log_run_header(self, plan: TrainingPlan) -> None:
        """Log the block users of the reference read (and grep) at the start of a run.

        The labels are the reference's, line for line, so scripts that parse its logs
        (``Total optimization steps = ...``) keep working.
        """
        # Under split_batches the loader's batch is shared by the processes.
        per_device = plan.total_train_batch_size // (self.accumulation * self.args.world_size)
        # A stream counts the whole run as one epoch, as the reference reports it.
        steps_per_epoch = plan.steps_per_epoch or plan.max_steps
        logger.info("***** Running training *****")
        for label, value in (
            ("Num examples", plan.num_examples),
            ("Num Epochs", plan.num_train_epochs),
            ("Num update steps per epoch", steps_per_epoch),
            ("Instantaneous batch size per device", per_device),
            (
                "Total train batch size (w. parallel, distributed & accumulation)",
                plan.total_train_batch_size,
            ),
            ("Gradient Accumulation steps", self.accumulation),
            ("Total optimization steps", plan.max_steps),
            (
                "Number of trainable parameters",
                get_model_param_count(self.model, trainable_only=True),
            ),
        ):
            logger.info("  %s = %s", label, f"{value:,}")
        if self.resume is not None:
            logger.info(
                "  Resuming training from checkpoint with epoch %d and global step %d",
                self.resume.epoch,
                self.trainer.state.global_step,
            )
            if not self.args.ignore_data_skip:
                logger.info(
                    "  Fast-forwarding the dataloader past %d epochs and %d batches to "
                    "resume from the exact training state.",
                    self.resume.epoch,
                    self.resume.batches_to_skip,
                )

    # ---------------------------------------------------------------- epochs
    def _run_epoch(self, epoch: int, dataloader: Any, plan: TrainingPlan) -> None:
        trainer, args = self.trainer, self.args
        sampler = getattr(dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if hasattr(getattr(dataloader, "dataset", None), "set_epoch"):
            dataloader.dataset.set_epoch(epoch)
        if args.past_index >= 0:  # memories do not carry over from an evaluation or epoch
            trainer._past = None
        trainer.control = trainer.callback_handler.on_epoch_begin(
            args, trainer.state, trainer.control
        )
        batches, consumed = open_epoch(trainer, self.resume, epoch, dataloader)
        # A loader without a length counts an epoch as the whole run's batches, as the
        # reference does: max_steps=4 logs epochs 0.25, 0.5, 0.75, 1.
        batches_per_epoch = plan.batches_per_epoch or max(plan.max_steps, 1) * self.accumulation
        while True:
            window = self._next_window(batches)
            if not window:
                self.data_position = (epoch + 1, 0)  # the pass is over
                break
            consumed += len(window)
            self.data_position = (epoch, consumed)
            self._optimizer_step(window, epoch, consumed, batches_per_epoch)
            control = trainer.control
            if control.should_epoch_stop or control.should_training_stop:
                break
        if consumed == 0 and trainer.state.global_step == 0:
            raise ValueError(
                "The train dataloader yielded no batch at all: the train_dataset is empty "
                f"({type(dataloader.dataset).__name__}). Check that the dataset (or the "
                "stream behind an IterableDataset) yields examples, and that filtering "
                "or dataloader_drop_last did not remove them all."
            )
        if consumed == 0:  # another pass would yield nothing either: stop, as the reference
            logger.warning(
                "The train dataloader yielded no batch in epoch %d: stopping training at step "
                "%d of %d. A stream (IterableDataset) may hold fewer examples than max_steps "
                "needs.",
                epoch,
                trainer.state.global_step,
                trainer.state.max_steps,
            )
            trainer.control.should_training_stop = True
        trainer.control = trainer.callback_handler.on_epoch_end(
            args, trainer.state, trainer.control
        )
        self._maybe_log_save_evaluate(epoch)

    def _next_window(self, batches: Iterator[Any]) -> list[Any]:
        """The micro-batches of one optimizer step (fewer at the end of an epoch).

        A ``get_batch_samples`` override gives them with their loss-item count, which
        ``_accumulate`` then uses instead of counting.
        """
        if self.custom_windows:
            window, self.window_items = self.trainer.get_batch_samples(
                batches, self.accumulation, self.trainer.runtime.device
            )
            return list(window)
        if self.accumulation == 1:
            batch = next(batches, None)
            return [] if batch is None else [batch]
        return list(islice(batches, self.accumulation))

    # ----------------------------------------------------------------- steps
    def _optimizer_step(
        self, window: list[Any], epoch: int, consumed: int, batches_per_epoch: int
    ) -> None:
        trainer, args = self.trainer, self.args
        handler = trainer.callback_handler
        trainer.control = handler.on_step_begin(args, trainer.state, trainer.control)
        if len(window) == 1 and not (
            self.count_items or self.custom_windows or trainer._count_every_window
        ):
            self._micro_step(window[0], None, 1)  # no accumulation: the common case
        elif not self._accumulate(window):
            self.zero_grad()  # the partial window's gradients must not leak into a later step
            return
        self._apply_gradients(handler)
        self.tracker.end_optimizer_step()
        state = trainer.state
        state.global_step += 1
        state.epoch = epoch + consumed / batches_per_epoch
        if self.empty_cache_every and state.global_step % self.empty_cache_every == 0:
            release_device_cache(trainer.runtime.device)
        control = trainer.control = handler.on_step_end(args, state, trainer.control)
        if (
            self.log_override
            or control.should_log
            or control.should_evaluate
            or control.should_save
        ):
            self._maybe_log_save_evaluate(epoch)

    def _accumulate(self, window: list[Any]) -> bool:
        """Forward/backward every micro-batch of a window; sync gradients on the last
        (on every one with ``gradient_accumulation_kwargs={"sync_each_batch": True}``).

        Returns False when a callback set ``should_training_stop`` or
        ``should_epoch_stop`` in ``on_substep_end``: the rest of the window is dropped
        and no optimizer step follows (the reference leaves the loop there too;
        ``global_step`` does not move).
        """
        trainer, args = self.trainer, self.args
        num_items = self.window_items if self.custom_windows else self._items_in_window(window)
        last = len(window) - 1
        for index, inputs in enumerate(window):
            if index == last:
                self._mark_sync(True)
                self._micro_step(inputs, num_items, len(window))
            else:
                skip_sync = not self.sync_each_batch
                self._mark_sync(not skip_sync)
                with trainer.runtime.no_sync(self.model) if skip_sync else nullcontext():
                    self._micro_step(inputs, num_items, len(window))
                control = trainer.control = trainer.callback_handler.on_substep_end(
                    args, trainer.state, trainer.control
                )
                if control.should_training_stop or control.should_epoch_stop:
                    return False
        return True

    def _mark_sync(self, syncing: bool) -> None:
        """Set what ``trainer.accelerator.sync_gradients`` reads: accelerate's flag is
        False on the micro-steps whose gradients stay local."""
        trainer = self.trainer
        trainer._sync_gradients = syncing  # for an accelerator made later in the step
        facade = trainer.__dict__.get("_accelerator")
        if facade is not None:
            facade.sync_gradients = syncing

    def _micro_step(self, inputs: Any, num_items: Any, window: int) -> None:
        trainer = self.trainer
        if self.count_tokens:
            self._count_tokens(inputs)
        if self.to_train_mode is not None:  # an evaluation may have switched it to eval
            self.to_train_mode()
        if self.direct_step is not None and num_items is None and window == 1:
            loss = self.direct_step(inputs)
        else:
            loss = trainer._call_training_step(self.model, inputs, num_items, window)
        self.tracker.add_micro_step(loss)
        if self.count_flops:
            trainer.current_flos += float(trainer.floating_point_ops(inputs))

    def _apply_gradients(self, handler: Any) -> None:
        trainer, args = self.trainer, self.args
        runtime = trainer.runtime
        self.grad_norm = runtime.clip_grad_norm(self.parameters, self.clip_norm)
        trainer.control = handler.on_pre_optimizer_step(args, trainer.state, trainer.control)
        stepped = runtime.optimizer_step(trainer.optimizer)
        trainer.control = handler.on_optimizer_step(args, trainer.state, trainer.control)
        self.step_learning_rate = trainer._get_learning_rate()
        if stepped and self.step_scheduler:
            trainer.lr_scheduler.step()
        self.zero_grad()

    def _items_in_window(self, window: list[Any]) -> torch.Tensor | None:
        """Total loss items over the accumulation window, for token-count normalisation."""
        trainer = self.trainer
        if not trainer._normalise_by_items:
            return None
        counts = [trainer._loss_items(inputs) for inputs in window]
        if any(count is None for count in counts):
            return None
        total = torch.stack(counts).sum()
        if self.count_items:  # every process must reach this collective: windows align
            total = trainer.runtime.reduce(total, "sum")
        return total

    def _count_tokens(self, inputs: Any) -> None:
        """Count one micro-batch; with ``include_num_input_tokens_seen``, bring the
        state's total up to date at once.

        Callbacks (a token-budget stop in ``on_step_end``, say) and the rest of the step
        read ``state.num_input_tokens_seen`` as the reference keeps it: including this
        micro-batch. When that needs a synchronisation, the reference pays one per
        micro-batch too (a gather). A token rate alone is read lazily (see
        ``_sync_tokens_seen``); without token counting nothing here runs.
        """
        main_input = self.trainer._main_input(inputs)
        if main_input is not None:
            self.tokens_seen += self.token_counter.add(inputs, main_input)
        else:
            self.token_counter.warn_missing(self.trainer.model, inputs)
        # Set on every process alike, whatever it counted: the sync may be a collective.
        self.tokens_stale = True
        if self.sync_tokens_each_batch:
            self._sync_tokens_seen()

    def _sync_tokens_seen(self) -> None:
        """Bring the state's token count up to date: the host count, the processes'
        counts summed (a collective), or counts still on the device read.

        With ``include_num_input_tokens_seen`` each counted micro-batch calls it; with
        only a token rate asked for, logs, evaluations, checkpoints and the final metrics
        do. A call that finds nothing new returns, on every process alike.
        """
        if not self.tokens_stale:
            return
        self.tokens_stale = False
        runtime = self.trainer.runtime
        counted_on_device = self.token_counter.device
        if runtime.num_processes == 1 and counted_on_device is None:
            self.trainer.state.num_input_tokens_seen = self.tokens_seen
            return
        if runtime.num_processes == 1:
            total = self.token_counter.total(self.tokens_seen, counted_on_device.device)
        else:
            local = self.token_counter.total(self.tokens_seen, runtime.device)
            total = runtime.reduce(local, "sum")
        self.trainer.state.num_input_tokens_seen = int(total.item())

    # ------------------------------------------------- log / evaluate / save
    def _maybe_log_save_evaluate(self, epoch: int) -> None:
        if self.log_override is not None:
            self.log_override(epoch)
            return
        trainer = self.trainer
        control = trainer.control
        if control.should_log or control.should_evaluate or control.should_save:
            self._sync_tokens_seen()  # the log, the evaluation's log and the checkpoint
        if control.should_log and trainer.state.global_step > self.last_logged_step:
            self._log_training_progress()
        evaluate_and_save(trainer, self.model, self.trial, self.ignore_keys_for_eval)

    def _log_training_progress(self) -> None:
        trainer = self.trainer
        state = trainer.state
        reduce = trainer.runtime.reduce if trainer.runtime.num_processes > 1 else None
        loss = self.tracker.flush(reduce)
        logs: dict[str, float] = {"loss": loss}  # unrounded, as transformers 5 logs it
        if self.grad_norm is not None:
            logs["grad_norm"] = float(self.grad_norm.detach().float().item())
        step_rate = self.step_learning_rate
        logs["learning_rate"] = trainer._get_learning_rate() if step_rate is None else step_rate
        self.last_logged_step = state.global_step
        trainer.store_flos()
        if self.log_takes_start_time:
            trainer.log(logs, self.start_time)
        else:
            trainer.log(logs)

    # ---------------------------------------------------------------- finish
    def _finish(self, plan: TrainingPlan, start_time: float) -> Any:
        trainer, args = self.trainer, self.args
        state = trainer.state
        # Blank lines set it apart from the training bar, which is still open here.
        logger.info("\n\nTraining completed.\n\n")
        if args.load_best_model_at_end and state.best_model_checkpoint is not None:
            trainer._load_best_model()
        self.tracker.flush(trainer.runtime.reduce if trainer.runtime.num_processes > 1 else None)
        # Averages and speeds cover the steps this run trained, not those a resumed
        # checkpoint had already done (as newer releases of the reference compute them).
        steps_trained = state.global_step - self.initial_global_step
        train_loss = self.tracker.total / max(steps_trained, 1e-3)
        trainer.store_flos()
        self._sync_tokens_seen()
        num_tokens = state.num_input_tokens_seen if args.include_tokens_per_second else None
        metrics = speed_metrics(
            "train",
            start_time,
            num_samples=plan.num_train_samples * steps_trained / max(plan.max_steps, 1),
            num_steps=steps_trained,
            num_tokens=num_tokens,
        )
        metrics["total_flos"] = state.total_flos
        metrics["train_loss"] = train_loss
        trainer.is_in_train = False
        trainer._training_loop = None  # get_batch_samples has no loop to draw from now
        trainer.__dict__.pop("_past", None)  # the last step's memories (past_index)
        trainer._memory_tracker.stop_and_update_metrics("train", metrics)
        trainer.log(metrics)
        self._keep_only_best_checkpoint()
        trainer.control = trainer.callback_handler.on_train_end(args, state, trainer.control)
        return trainer._train_output(state.global_step, train_loss, metrics)

    def _keep_only_best_checkpoint(self) -> None:
        """Under ``save_total_limit=1``, delete every checkpoint but the best one.

        During training, rotation also keeps the newest checkpoint (a resumed run starts
        there), so an older best leaves two; once training is over no resume needs the
        newest, and the reference deletes all but the best (on processes that save).
        Needs a store with ``delete`` (an extension of the port); others keep both.
        """
        args, state = self.args, self.trainer.state
        best = state.best_model_checkpoint
        if not (args.should_save and best is not None and args.save_total_limit == 1):
            return
        store = self.trainer.checkpoint_store
        delete = getattr(store, "delete", None)
        if delete is None:
            return
        for path in store.checkpoints(args.output_dir):
            if os.path.realpath(path) != os.path.realpath(best):
                logger.info("Deleting older checkpoint [%s] due to args.save_total_limit", path)
                delete(path)


def release_device_cache(device: torch.device) -> None:
    """Hand the memory the device's caching allocator holds but does not use back to the
    driver (``torch_empty_cache_steps``): slower steps, a lower memory peak for other
    processes sharing the device. The CPU has no such cache."""
    backend = getattr(torch, device.type, None) if device.type != "cpu" else None
    empty_cache = getattr(backend, "empty_cache", None)
    if callable(empty_cache):
        empty_cache()
