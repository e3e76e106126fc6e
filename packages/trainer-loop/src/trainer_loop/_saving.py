"""Saving the model and ``checkpoint-<step>`` folders during training.

The file names follow the reference (``model.safetensors`` or ``pytorch_model.bin``,
``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``, ``trainer_state.json``) so that
checkpoints move between the two. A checkpoint is assembled in a temporary folder and
renamed into place once complete, so an interrupted save never looks like a checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer_loop._inputs import accepts_argument

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"
WEIGHTS_NAME = "pytorch_model.bin"
SAFE_WEIGHTS_NAME = "model.safetensors"
TRAINER_STATE_NAME = "trainer_state.json"
TRAINING_ARGS_NAME = "training_args.json"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def sorted_checkpoints(output_dir: str) -> list[str]:
    """Complete ``checkpoint-<step>`` folders in ``output_dir``, oldest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            found.append((int(match.group(1)), os.path.join(output_dir, name)))
    return [path for _, path in sorted(found)]


class CheckpointWriter:
    """Writes models and checkpoints for one Trainer."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def save_model(self, output_dir: str | None = None) -> None:
        trainer = self.trainer
        output_dir = output_dir or trainer.args.output_dir
        if not trainer.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self._write_weights(output_dir)
        processing_class = trainer.processing_class
        if processing_class is not None and hasattr(processing_class, "save_pretrained"):
            processing_class.save_pretrained(output_dir)
        with open(os.path.join(output_dir, TRAINING_ARGS_NAME), "w", encoding="utf-8") as handle:
            handle.write(trainer.args.to_json_string())

    def _write_weights(self, output_dir: str) -> None:
        trainer = self.trainer
        model = trainer.runtime.unwrap_model(trainer.model_wrapped)
        state_dict = trainer.runtime.state_dict(model)
        safe = bool(trainer.args.save_safetensors)
        save_pretrained = getattr(model, "save_pretrained", None)
        if save_pretrained is not None:
            kwargs: dict[str, Any] = {"state_dict": state_dict}
            if accepts_argument(save_pretrained, "safe_serialization"):
                kwargs["safe_serialization"] = safe
            save_pretrained(output_dir, **kwargs)
        elif safe:
            from safetensors.torch import save_model

            save_model(model, os.path.join(output_dir, SAFE_WEIGHTS_NAME))
        else:
            torch.save(state_dict, os.path.join(output_dir, WEIGHTS_NAME))

    def save_checkpoint(self, metrics: dict[str, float] | None) -> None:
        trainer = self.trainer
        args, state = trainer.args, trainer.state
        name = f"{CHECKPOINT_PREFIX}-{state.global_step}"
        final = os.path.join(args.output_dir, name)
        self._update_best(metrics, final)
        if not args.should_save:
            trainer.runtime.wait_for_everyone()
            return
        staging = os.path.join(args.output_dir, f".tmp-{name}")
        shutil.rmtree(staging, ignore_errors=True)
        self.save_model(staging)
        if not args.save_only_model:
            torch.save(trainer.optimizer.state_dict(), os.path.join(staging, "optimizer.pt"))
            torch.save(trainer.lr_scheduler.state_dict(), os.path.join(staging, "scheduler.pt"))
            torch.save(_rng_state(), os.path.join(staging, "rng_state.pth"))
        state.save_to_json(os.path.join(staging, TRAINER_STATE_NAME))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        self._rotate(args.output_dir)
        trainer.runtime.wait_for_everyone()

    def _update_best(self, metrics: dict[str, float] | None, checkpoint: str) -> None:
        args, state = self.trainer.args, self.trainer.state
        if not metrics or args.metric_for_best_model is None:
            return
        key = args.metric_for_best_model
        key = key if key.startswith("eval_") else f"eval_{key}"
        if key not in metrics:
            raise KeyError(
                f"metric_for_best_model={args.metric_for_best_model!r}: the evaluation "
                f"returned no {key!r}; it returned {', '.join(sorted(metrics))}."
            )
        value = float(metrics[key])
        better = np.greater if args.greater_is_better else np.less
        if state.best_metric is None or better(value, state.best_metric):
            state.best_metric = value
            state.best_model_checkpoint = checkpoint

    def _rotate(self, output_dir: str) -> None:
        limit = self.trainer.args.save_total_limit
        if limit is None or limit <= 0:
            return
        checkpoints = sorted_checkpoints(output_dir)
        best = self.trainer.state.best_model_checkpoint
        if best in checkpoints and self.trainer.args.load_best_model_at_end:
            limit = max(limit, 2)
        deletable = [c for c in checkpoints if c != best]
        for path in deletable[: max(len(checkpoints) - limit, 0)]:
            logger.info("Deleting older checkpoint %s (save_total_limit=%d)", path, limit)
            shutil.rmtree(path, ignore_errors=True)

    def load_best_model(self) -> None:
        trainer = self.trainer
        best = trainer.state.best_model_checkpoint
        logger.info("Loading best model from %s (score: %s).", best, trainer.state.best_metric)
        model = trainer.runtime.unwrap_model(trainer.model_wrapped)
        safe_path = os.path.join(best, SAFE_WEIGHTS_NAME)
        if os.path.exists(safe_path):
            from safetensors.torch import load_model

            load_model(model, safe_path, device=str(trainer.runtime.device))
            return
        state_dict = torch.load(
            os.path.join(best, WEIGHTS_NAME), map_location="cpu", weights_only=True
        )
        model.load_state_dict(state_dict)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.random.get_rng_state_all()
    return state
