"""Training script for ``accelerator_config={"split_batches": True}`` (and the plain
one-process reference): each process reports the sample ids of every batch it trained
on, the batch sizes the loop recorded and logged, evaluation results and the weights.

    torchrun --nproc_per_node 2 split_batches_worker.py <out> '<json runs>'
    python split_batches_worker.py <out> '<json runs>'

``<json runs>`` maps each run's name to its training-argument overrides, plus
``dataset_size`` (16 by default) and ``resume_from_checkpoint`` (none by default). The
runs train one after the other in the same processes (one launch instead of several,
each of which costs seconds of start-up), each in ``<out>/<name>``; the report holds
each run's results under its name.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import torch
from _worker_exit import leave_group_and_exit
from test_distributed_worker import (
    group_facts,
    make_dataset,
    make_model,
    training_args,
    weights_of,
    write_group_report,
)


class _HeaderLines(logging.Handler):
    """Keeps the run header's batch-size lines that the training loop logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "batch size" in message:
            self.lines.append(message.strip())


def run(out: str, overrides: dict[str, Any]) -> dict[str, Any]:
    from trainer import Trainer

    overrides = dict(overrides)
    size = overrides.pop("dataset_size", 16)
    resume = overrides.pop("resume_from_checkpoint", None)
    args = training_args(out, log_level="info", **overrides)
    model = make_model()
    batches: list[list[int]] = []
    model.register_forward_pre_hook(
        lambda module, inputs, kwargs: (
            batches.append(kwargs["idx"].tolist()) if module.training else None
        ),
        with_kwargs=True,
    )
    header = _HeaderLines()
    loop_logger = logging.getLogger("trainer_loop")
    loop_logger.addHandler(header)
    trainer = Trainer(
        model=model, args=args, train_dataset=make_dataset(size), eval_dataset=make_dataset(7)
    )
    try:
        trainer.train(resume_from_checkpoint=resume)
        predictions = trainer.predict(make_dataset(7))
        return {
            "batches": batches,
            "weights": weights_of(trainer.runtime.state_dict(trainer.model_wrapped)),
            "steps": trainer.state.global_step,
            "train_batch_size": trainer.state.train_batch_size,
            "header": header.lines,
            "eval_loss": trainer.evaluate()["eval_loss"],
            "predictions": torch.as_tensor(predictions.predictions).tolist(),
        }
    finally:
        loop_logger.removeHandler(header)  # a later run's lines are its own


def run_all(out: str, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Train ``runs`` in order, each in ``<out>/<name>``; their results by name.

    A run may resume a checkpoint an earlier one wrote: every process waits until all
    of them have ended the previous run (and the main process has written its files).
    """
    result: dict[str, Any] = {}
    for name, overrides in runs.items():
        result[name] = run(os.path.join(out, name), overrides)
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    out_dir, runs_json = sys.argv[1:]
    result = run_all(out_dir, json.loads(runs_json))
    if torch.distributed.is_initialized():
        write_group_report(out_dir, result)
    else:
        with open(os.path.join(out_dir, "rank0.json"), "w", encoding="utf-8") as handle:
            json.dump({**result, **group_facts()}, handle)
    leave_group_and_exit()
