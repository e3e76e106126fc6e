"""The script test_fsdp_tied_weights.py launches with ``torchrun`` (not a test module).

A tiny Llama whose output projection shares the input embedding's weight, sharded the
transformers 5 way: ``--fsdp`` alone on the command line, with ``auto_wrap_policy:
SIZE_BASED_WRAP`` in ``--fsdp_config``. Size-based wrapping would pick the embedding and
the output projection as units of their own (each is past the threshold), which FSDP2
refuses for one shared tensor; they must stay in the root unit.

Each process evaluates, trains a few steps, evaluates again and saves the model, then
writes what it saw to ``<out>/rank<N>.json``: the losses, the units, whether the weights
were sharded, and (rank 0) the losses of the whole model computed alone before and after
(the saved model reloaded with ``from_pretrained``), to compare with.

    torchrun --nproc_per_node 2 fsdp_tied_worker.py <out>
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

VOCAB, LENGTH, SAMPLES = 64, 8, 12
FSDP_CONFIG = {"auto_wrap_policy": "SIZE_BASED_WRAP", "min_num_params": 500}


def samples() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (SAMPLES, LENGTH), generator=generator)
    return [{"input_ids": row, "labels": row} for row in ids]


def whole_model_loss(model: Any) -> float:
    """Mean loss over the samples, batch by batch as the Trainer's evaluation takes them."""
    model.eval()
    rows = samples()
    with torch.no_grad():
        losses = [
            model(
                input_ids=torch.stack([r["input_ids"] for r in rows[i : i + 2]]),
                labels=torch.stack([r["labels"] for r in rows[i : i + 2]]),
            ).loss.item()
            for i in range(0, len(rows), 2)
        ]
    return sum(losses) / len(losses)


def main() -> None:
    from torch.distributed.fsdp import FSDPModule

    from trainer import HfArgumentParser, Trainer, TrainingArguments
    from trainer_testing.language import tiny_llama

    out = sys.argv[1]
    argv = [
        "--output_dir", out, "--fsdp", "--fsdp_config", json.dumps(FSDP_CONFIG),
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "1",
        "--max_steps", "3", "--learning_rate", "0.01", "--save_strategy", "no",
        "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "--seed", "0",
        "--ddp_timeout", "60",
    ]  # fmt: skip
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv)
    model = tiny_llama(VOCAB, LENGTH, layers=2, tied=True)
    before = whole_model_loss(model)
    trainer = Trainer(model=model, args=args, train_dataset=samples(), eval_dataset=samples())
    first = trainer.evaluate()["eval_loss"]
    trainer.train()
    last = trainer.evaluate()["eval_loss"]
    trainer.save_model()
    rank = int(os.environ.get("RANK", "0"))
    report: dict[str, Any] = {
        "fsdp": [option.value for option in args.fsdp],
        "runtime": type(trainer.runtime).__name__,
        "parameter_types": sorted({type(p).__name__ for p in model.parameters()}),
        "units": [name for name, m in model.named_modules() if isinstance(m, FSDPModule)],
        "eval_before": first,
        "eval_after": last,
        "whole_before": before,
    }
    if rank == 0:
        import transformers

        reloaded = transformers.LlamaForCausalLM.from_pretrained(out)
        report["reloaded_tied"] = reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
        report["whole_after"] = whole_model_loss(reloaded)
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    torch.set_num_threads(1)
    main()
    leave_group_and_exit()
