"""The script test_distributed_token_counts.py launches (not a test module).

A tiny Llama causal LM trains on sequences of different lengths (padding labelled
-100), so each process's batches hold a different number of loss tokens. Each process
writes what it observed to ``<out>/rank<N>.json``: the final weights, the logged losses,
``num_input_tokens_seen`` and the group it belonged to.

    torchrun --nproc_per_node 2 token_count_worker.py <out>

trains twice: normalising by the tokens of every process (``averaged``), then by each
process's own (``own``, accumulating two micro-batches of half the size, so that the
window's count is this process's alone). The tests also import :func:`train` for the
one-process run.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from trainer_testing.language import padded_token_sequences, tiny_llama

SAMPLES, LENGTH, VOCAB = 16, 12, 32
GLOBAL_BATCH = 4


def train(out: str, *, average: bool, accumulation: int = 1) -> dict[str, Any]:
    import torch.distributed as dist

    from trainer import Trainer, TrainingArguments

    world = int(os.environ.get("WORLD_SIZE", "1"))
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=GLOBAL_BATCH // world // accumulation,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=2,
        optim="sgd",  # Adam would turn float noise in near-zero gradients into whole steps
        learning_rate=0.5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        ddp_timeout=120,
        include_num_input_tokens_seen=True,
        average_tokens_across_devices=average,
    )
    model = tiny_llama(VOCAB, LENGTH)
    trainer = Trainer(
        model=model, args=args, train_dataset=padded_token_sequences(SAMPLES, LENGTH, VOCAB, seed=3)
    )
    trainer.train()
    state = trainer.runtime.state_dict(trainer.model_wrapped)
    size = dist.get_world_size() if dist.is_initialized() else 1
    return {
        "world_size": size,
        "runtime": type(trainer.runtime).__name__,
        "weights": {key: value.flatten().tolist() for key, value in state.items()},
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "tokens_seen": trainer.state.num_input_tokens_seen,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    options = parser.parse_args()
    torch.set_num_threads(1)
    result = {  # one launch for both (starting the processes costs more than training)
        "averaged": train(os.path.join(options.out, "averaged"), average=True),
        "own": train(os.path.join(options.out, "own"), average=False, accumulation=2),
    }
    rank = int(os.environ.get("RANK", "0"))
    Path(options.out, f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main()
    leave_group_and_exit()
