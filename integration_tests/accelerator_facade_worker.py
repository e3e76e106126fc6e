"""Training script for ``trainer.accelerator`` / ``args.distributed_state`` under DDP.

A TRL-style subclass calls ``self.accelerator`` inside ``compute_loss`` and ``evaluate``
and records what it sees; the same script runs on our Trainer or on transformers'
(``ours`` / ``reference``), so the test can compare the two reports.

    torchrun --nproc_per_node 2 accelerator_facade_worker.py ours <out>
    torchrun --nproc_per_node 2 accelerator_facade_worker.py reference <out>
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch
from _worker_exit import leave_group_and_exit
from test_distributed_worker import make_dataset, make_model

EVAL_SIZE = 7  # an uneven end on 2 processes: gather_for_metrics must drop the padding


def _classes(backend: str) -> tuple[type, type]:
    if backend == "reference":
        from transformers import Trainer, TrainingArguments
    else:
        from trainer import Trainer, TrainingArguments
    return Trainer, TrainingArguments


def _facts(trainer: Any, model: Any) -> dict[str, Any]:
    """What a subclass reads of the accelerator and the process state."""
    accelerator, state = trainer.accelerator, trainer.args.distributed_state
    return {
        "is_main_process": accelerator.is_main_process,
        "is_local_main_process": accelerator.is_local_main_process,
        "process_index": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "use_distributed": accelerator.use_distributed,
        "distributed_type": str(accelerator.distributed_type),
        "mixed_precision": str(accelerator.mixed_precision),
        "device": str(accelerator.device),
        "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
        "deepspeed_plugin": accelerator.state.deepspeed_plugin is None,
        "wrapped": type(model).__name__,
        "unwrapped": type(accelerator.unwrap_model(model)).__name__,
        "unwrapped_is_model": accelerator.unwrap_model(model) is trainer.model,
        "state_num_processes": state.num_processes,
        "state_process_index": state.process_index,
        "state_local_process_index": state.local_process_index,
        "state_distributed_type": str(state.distributed_type),
        "state_is_main_process": state.is_main_process,
        "state_device": str(state.device),
    }


def _collectives(accelerator: Any) -> dict[str, Any]:
    rank = accelerator.process_index
    value = torch.tensor([rank + 1.0])
    ragged = torch.full((1, rank + 1), float(rank))
    return {
        "reduce_sum": accelerator.reduce(value).tolist(),
        "reduce_mean": accelerator.reduce(value, reduction="mean").tolist(),
        "gather": accelerator.gather(torch.tensor([rank])).tolist(),
        "padded": accelerator.pad_across_processes(ragged, dim=1).tolist(),
        "objects": accelerator.gather_for_metrics([f"rank{rank}"]),
    }


def _step_helpers(accelerator: Any) -> dict[str, Any]:
    """``split_between_processes``, ``no_sync`` / ``accumulate`` around a backward of a
    model prepared through the accelerator (DDP here), and the trackers, as TRL-style
    code uses them."""
    rank = accelerator.process_index
    with accelerator.split_between_processes([0, 1, 2]) as share:
        split = list(share)
    layer = accelerator.prepare(torch.nn.Linear(1, 1, bias=False))
    weight = accelerator.unwrap_model(layer).weight
    inputs = torch.tensor([[rank + 1.0]])
    with accelerator.no_sync(layer):
        accelerator.backward(layer(inputs).sum())
    local = weight.grad.tolist()
    weight.grad = None
    with accelerator.accumulate(layer):
        accelerator.backward(layer(inputs).sum())
        sync = accelerator.sync_gradients
    return {
        "split": split,
        "no_sync_grad": local,  # this process's own gradient
        "accumulate_grad": weight.grad.tolist(),  # averaged over the processes
        "accumulate_sync": sync,
        "trackers": len(accelerator.trackers),
        "tracker": type(accelerator.get_tracker("wandb")).__name__,
    }


def make_trainer_class(base: type) -> type:
    class FacadeTrainer(base):  # type: ignore[misc, valid-type]  # chosen at run time
        """Uses ``self.accelerator`` the way TRL's trainers do."""

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, **kwargs: Any
        ) -> Any:
            outputs = model(**inputs)
            loss = outputs["loss"]
            if not hasattr(self, "facts"):
                self.facts = _facts(self, model)
                self.facts.update(_collectives(self.accelerator))
                self.facts.update(_step_helpers(self.accelerator))
                self.losses: list[float] = []
            # TRL logs metrics averaged over the processes.
            self.losses.append(float(self.accelerator.reduce(loss.detach(), reduction="mean")))
            return (loss, outputs) if return_outputs else loss

        def evaluate(self, eval_dataset: Any = None, **kwargs: Any) -> dict[str, float]:
            ids, logits, texts = [], [], []
            model = self.accelerator.unwrap_model(self.model)
            for batch in self.get_eval_dataloader(eval_dataset):
                with torch.no_grad():
                    logits.append(self.accelerator.gather_for_metrics(model(**batch)["logits"]))
                ids.append(self.gather_function(batch["idx"]))  # the reference's shortcut
                # Objects (generated text, say): one per sample, the padding dropped too.
                names = [f"s{int(i)}" for i in batch["idx"]]
                texts.extend(self.accelerator.gather_for_metrics(names))
            self.eval_ids = torch.cat(ids).tolist()
            self.eval_logits = torch.cat(logits).tolist()
            self.eval_texts = texts
            return super().evaluate(eval_dataset, **kwargs)

    return FacadeTrainer


def main(backend: str, out: str) -> None:
    trainer_class, arguments_class = _classes(backend)
    args = arguments_class(
        output_dir=out,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=3,
        num_train_epochs=1,
        learning_rate=0.05,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
        ddp_timeout=120,
    )
    trainer = make_trainer_class(trainer_class)(
        model=make_model(), args=args, train_dataset=make_dataset(), eval_dataset=make_dataset(7)
    )
    trainer.train()
    metrics = trainer.evaluate()
    report = {
        **trainer.facts,
        "losses": trainer.losses,
        "eval_ids": trainer.eval_ids,
        "eval_texts": trainer.eval_texts,
        "eval_logits": trainer.eval_logits,
        "eval_loss": metrics["eval_loss"],
    }
    rank = trainer.accelerator.process_index
    trainer.end()  # transformers 5's last call: leaves the process group
    report["group_ended"] = not torch.distributed.is_initialized()
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    leave_group_and_exit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
