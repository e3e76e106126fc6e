"""Stop-and-resume comparisons for ``test_resume_matrix.py``, in one process or under
torchrun.

A *pair* is an uninterrupted run and the same run stopped by a callback at step ``k``
(``control.should_training_stop``, so that the schedule is the one of the full run)
then resumed from ``checkpoint-k`` with other initial weights. :func:`compare_pair`
returns how far the two ends are apart: weights, optimizer state, and the losses and
learning rates logged after ``k``. The model is a tiny GPT-2 with dropout everywhere
and the data token rows with ``-100`` padding, so both the random generators and the
token-count normalisation of accumulated losses must be restored.

Not a test module: under ``__main__`` each process runs the distributed pairs and
writes the differences to ``<out>/rank<N>.json``.

    torchrun --nproc_per_node 2 resume_matrix_worker.py <out>
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

VOCAB = 40


def dropout_gpt2(seed: int) -> Any:
    """A GPT-2 of a few thousand parameters whose every dropout is on (eager attention,
    so the attention dropout draws from torch's generator too)."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.2,
        embd_pdrop=0.2,
        attn_pdrop=0.2,
        attn_implementation="eager",
    )
    return transformers.GPT2LMHeadModel(config)


def token_rows(size: int) -> list[dict[str, torch.Tensor]]:
    from trainer_testing.language import padded_token_sequences

    return padded_token_sequences(size, 8, VOCAB, seed=3)


def _stop_at(step: int | None) -> Any:
    from trainer import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if step is not None and state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def run(out: str, *, stop: int | None = None, resume: str | None = None, **options: Any) -> Any:
    """Train the tiny GPT-2 (other initial weights when resuming); return the trainer."""
    from trainer import Trainer, TrainingArguments

    dataset = options.pop("train_dataset", None)
    collator = options.pop("data_collator", None)
    model = options.pop("model", None) or dropout_gpt2(5 if resume else 0)
    arguments = {
        "output_dir": out,
        "per_device_train_batch_size": 2,
        "num_train_epochs": 2,
        "learning_rate": 0.01,
        "warmup_steps": 2,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": 0,
        "ddp_timeout": 120,
        **options,
    }
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**arguments),
        train_dataset=dataset if dataset is not None else token_rows(26),
        data_collator=collator,
        callbacks=[_stop_at(stop)],
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def _after(trainer: Any, step: int) -> list[tuple[int, float, float]]:
    return [
        (entry["step"], entry["loss"], entry["learning_rate"])
        for entry in trainer.state.log_history
        if "loss" in entry and entry["step"] > step
    ]


def _optimizer_difference(left: Any, right: Any) -> float:
    states = (left.optimizer.state_dict()["state"], right.optimizer.state_dict()["state"])
    if sorted(states[0]) != sorted(states[1]):
        return float("inf")
    return max(
        (value - states[1][index][name]).abs().max().item()
        for index, entries in states[0].items()
        for name, value in entries.items()
    )


def compare_pair(root: str, stop: int, **options: Any) -> dict[str, Any]:
    """Run the pair in ``root/{full,stopped,resumed}``; return the differences."""
    make = options.pop("make_options", dict)  # fresh datasets/models for every run
    full = run(os.path.join(root, "full"), **make(), **options)
    run(os.path.join(root, "stopped"), stop=stop, **make(), **options)
    checkpoint = os.path.join(root, "stopped", f"checkpoint-{stop}")
    resumed = run(os.path.join(root, "resumed"), resume=checkpoint, **make(), **options)
    weights = zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    )
    logged = (_after(full, stop), _after(resumed, stop))
    return {
        "steps": [full.state.global_step, resumed.state.global_step],
        "weights": max((a - b).abs().max().item() for a, b in weights),
        "optimizer": _optimizer_difference(full, resumed),
        "logs_equal": logged[0] == logged[1] and len(logged[0]) > 0,
    }


def main(out: str) -> None:
    torch.set_num_threads(1)
    # 26 rows in batches of 2 on 2 processes: 7 global batch steps an epoch (the last
    # completed from the start of the order); windows of 3 make 3 steps an epoch.
    report = {
        f"average_tokens={average}": compare_pair(
            os.path.join(out, f"average_{average}"),
            2,
            gradient_accumulation_steps=3,
            average_tokens_across_devices=average,
        )
        for average in (True, False)
    }
    report["world_size"] = torch.distributed.get_world_size()
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    from _worker_exit import leave_group_and_exit

    leave_group_and_exit()  # skips torch.distributed's teardown, which can abort


if __name__ == "__main__":
    main(sys.argv[1])
