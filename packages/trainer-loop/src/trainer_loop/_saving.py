"""Saving the model and ``checkpoint-<step>`` folders, through the checkpoint store.

The Trainer decides what a checkpoint holds and when one is due; the store (any
``trainer_core.CheckpointStore``, by default trainer-checkpoint's
``FolderCheckpointStore``) decides how it is written, found, rotated and read. This
module also keeps the best-metric bookkeeping of ``load_best_model_at_end`` /
``metric_for_best_model`` / ``greater_is_better``.
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any

from trainer_core import CheckpointContent, CheckpointStore, ExportableState

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"
TRAINER_STATE_NAME = "trainer_state.json"


def default_checkpoint_store(args: Any, runtime: Any) -> CheckpointStore:
    """trainer-checkpoint's folder store, configured from the arguments."""
    from trainer_checkpoint import FolderCheckpointStore

    return FolderCheckpointStore(
        safe_serialization=bool(getattr(args, "save_safetensors", True)),
        num_processes=runtime.num_processes,
    )


def export_callback_states(trainer: Trainer) -> dict[str, Any]:
    """``{class name: state}`` of the control and of every callback that can export one.

    Written with each checkpoint (as the reference does; its Trainer expects at least the
    ``TrainerControl`` entry when it resumes from our checkpoints). Two callbacks of one
    class are stored as a list, in order.
    """
    exported: dict[str, Any] = {}
    for callback in [*trainer.callback_handler.callbacks, trainer.control]:
        if not isinstance(callback, ExportableState):
            continue
        name, value = type(callback).__name__, callback.state()
        if name not in exported:
            exported[name] = value
        elif isinstance(exported[name], list):
            exported[name].append(value)
        else:
            exported[name] = [exported[name], value]
    return exported


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


class CheckpointWriter:
    """Writes models and checkpoints for one Trainer through its checkpoint store."""

    def __init__(self, trainer: Trainer, store: CheckpointStore | None = None) -> None:
        self.trainer = trainer
        self.store = (
            store if store is not None else default_checkpoint_store(trainer.args, trainer.runtime)
        )

    def _model_content(self) -> CheckpointContent:
        trainer = self.trainer
        model = trainer.runtime.unwrap_model(trainer.model_wrapped)
        return CheckpointContent(
            model=model,
            state_dict=trainer.runtime.state_dict(model),
            processing_class=trainer.processing_class,
            training_args=trainer.args,
        )

    def save_model(self, output_dir: str | None = None) -> None:
        """Weights, processing class and arguments into ``output_dir`` (writer processes)."""
        trainer = self.trainer
        output_dir = output_dir or trainer.args.output_dir
        # Every process builds the content: gathering a sharded model's state dict is a
        # collective, and a writer waiting alone for it would hang.
        content = self._model_content()
        if trainer.args.should_save:
            self.store.save_model(output_dir, content)
        trainer.runtime.wait_for_everyone()

    def save_checkpoint(self) -> str:
        """Write ``checkpoint-<global_step>``, then rotate; return its path."""
        trainer = self.trainer
        args, state, runtime = trainer.args, trainer.state, trainer.runtime
        trainer.store_flos()
        step = state.global_step
        self._point_best_checkpoint(args.output_dir, step)
        content = self._model_content()
        if not args.save_only_model:
            content.optimizer = trainer.optimizer
            content.scheduler = trainer.lr_scheduler
            content.scaler_state = runtime.scaler_state_dict() or None
            sampler_state = getattr(getattr(trainer, "_train_sampler", None), "sampler_state", None)
            content.rng_extra = {"sampler": sampler_state()} if sampler_state else {}
        state.stateful_callbacks = export_callback_states(trainer)
        content.trainer_state = state
        path = self.store.save(
            args.output_dir,
            step,
            content,
            process_index=runtime.process_index,
            is_writer=bool(args.should_save),
            barrier=runtime.wait_for_everyone,
        )
        if args.should_save and args.save_total_limit:
            keep = [state.best_model_checkpoint, getattr(trainer, "_resume_from", None)]
            self.store.rotate(args.output_dir, args.save_total_limit, keep=[k for k in keep if k])
        return path

    def _point_best_checkpoint(self, output_dir: str, step: int) -> None:
        state = self.trainer.state
        if state.best_global_step is None:
            return
        best = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}-{state.best_global_step}")
        if state.best_global_step == step or os.path.isdir(best):
            state.best_model_checkpoint = best

    def record_metrics(self, metrics: dict[str, float] | None) -> bool:
        """Track ``metric_for_best_model``; return whether ``metrics`` is a new best.

        Raises:
            KeyError: the evaluation did not return the metric named.
        """
        args, state = self.trainer.args, self.trainer.state
        if not metrics or args.metric_for_best_model is None:
            return False
        key = args.metric_for_best_model
        key = key if key.startswith("eval_") else f"eval_{key}"
        if key not in metrics:
            raise KeyError(
                f"metric_for_best_model={args.metric_for_best_model!r}: the evaluation "
                f"returned no {key!r}; it returned {', '.join(sorted(metrics))}. Pass one "
                "of those (with or without the 'eval_' prefix)."
            )
        value = float(metrics[key])
        greater = args.greater_is_better
        greater = greater if greater is not None else key not in ("eval_loss",)
        best = state.best_metric
        if best is None:
            best = -math.inf if greater else math.inf
        if not (value > best if greater else value < best):
            return False
        state.best_metric = value
        if _strategy(args.save_strategy) != "no":
            state.best_global_step = state.global_step
        return True

    def save_strategy_is_best(self) -> bool:
        """Whether checkpoints are written only when the best metric improves."""
        return _strategy(self.trainer.args.save_strategy) == "best"

    def load_best_model(self) -> None:
        """Load the weights of ``state.best_model_checkpoint`` into the model."""
        trainer = self.trainer
        best = trainer.state.best_model_checkpoint
        logger.info("Loading best model from %s (score: %s).", best, trainer.state.best_metric)
        model = trainer.runtime.unwrap_model(trainer.model_wrapped)
        self.store.load_model(best, model)

    def save_state(self) -> None:
        """Write ``trainer_state.json`` into ``output_dir`` (main process only)."""
        trainer = self.trainer
        if trainer.is_world_process_zero():
            os.makedirs(trainer.args.output_dir, exist_ok=True)
            trainer.state.save_to_json(os.path.join(trainer.args.output_dir, TRAINER_STATE_NAME))
