"""The script test_distributed_token_callbacks.py launches (not a test module).

Each process trains a tiny embedding model on padded rows (``REAL`` tokens of
``LENGTH``) with two micro-batches per optimizer step, once per counting mode, and
writes ``state.num_input_tokens_seen`` as its callbacks saw it at every
``on_substep_end`` and ``on_step_end`` to ``<out>/rank<N>.json``. A second run per mode
stops through a token-budget callback.

    torchrun --nproc_per_node 2 token_callback_worker.py <out>
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from trainer_testing.models import PaddedTokenDataset, TokenEmbeddingModel

LENGTH, REAL, ROWS, BATCH, BUDGET = 6, 4, 32, 2, 90


def train(out: str, mode: str, budget: int | None) -> dict[str, Any]:
    from trainer import Trainer, TrainerCallback, TrainingArguments

    seen: dict[str, list[int]] = {"substeps": [], "steps": []}

    class Reader(TrainerCallback):
        def on_substep_end(self, args, state, control, **kwargs):
            seen["substeps"].append(state.num_input_tokens_seen)

        def on_step_end(self, args, state, control, **kwargs):
            seen["steps"].append(state.num_input_tokens_seen)
            if budget is not None and state.num_input_tokens_seen >= budget:
                control.should_training_stop = True

    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=2,
        num_train_epochs=1,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        ddp_timeout=120,
        include_num_input_tokens_seen=mode,
    )
    trainer = Trainer(
        model=TokenEmbeddingModel(),
        args=args,
        train_dataset=PaddedTokenDataset(ROWS, LENGTH, REAL),
        callbacks=[Reader()],
    )
    trainer.train()
    history = trainer.state.log_history
    return {
        **seen,
        "logged": [entry["num_input_tokens_seen"] for entry in history if "loss" in entry],
        "final": trainer.state.num_input_tokens_seen,
        "final_logged": history[-1]["num_input_tokens_seen"],
        "global_step": trainer.state.global_step,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    options = parser.parse_args()
    torch.set_num_threads(1)
    result = {  # one launch for all (starting the processes costs more than training)
        f"{mode}{suffix}": train(os.path.join(options.out, mode + suffix), mode, budget)
        for mode in ("all", "non_padding")
        for suffix, budget in (("", None), ("_budget", BUDGET))
    }
    rank = int(os.environ.get("RANK", "0"))
    Path(options.out, f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main()
    leave_group_and_exit()
