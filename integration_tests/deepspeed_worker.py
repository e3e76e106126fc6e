"""The training script the DeepSpeed tests launch (torchrun, ``deepspeed``, ``accelerate``).

Not a test module: its work runs only under ``__main__``. Each process runs one scenario
and writes what it observed to ``<out>/rank<N>.json``; ``test_distributed_deepspeed.py``
compares the files. Every report carries the group facts (world size and the ranks
all-gathered through a collective), so that a run in which each process trains alone
fails the tests.

    deepspeed --num_gpus 2 deepspeed_worker.py zero <out> --deepspeed ds.json --use_cpu true
    accelerate launch --config_file ds.yaml deepspeed_worker.py launcher <out>
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_distributed_worker as base  # the shared model, data and helpers

ACCUMULATION = 2
MICRO_BATCH = 1
STEPS = 8  # of the hand-written loop in the resume check
SAVE_AT = 4


def deepspeed_config(stage: int, **extra: Any) -> dict[str, Any]:
    """A config in the style of the reference's examples: everything shared is "auto"."""
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "zero_optimization": {
            "stage": stage,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto" if stage != 3 else 0,
        },
        **extra,
    }


def training_args(out: str, **overrides: Any) -> Any:
    values = {
        "save_safetensors": True,
        "gradient_accumulation_steps": ACCUMULATION,
        "per_device_train_batch_size": MICRO_BATCH,
        "logging_steps": 1,
        **overrides,
    }
    return base.training_args(out, **values)


def train(
    out: str, deepspeed: Any = None, resume: str | None = None, **overrides: Any
) -> tuple[Any, dict[str, Any]]:
    """Train the shared regressor for 2 epochs; return the trainer and what it saw."""
    from trainer import Trainer

    extra = {"deepspeed": deepspeed} if deepspeed is not None else {}
    model = base.make_model()
    trainer = Trainer(
        model=model,
        args=training_args(out, **extra, **overrides),
        train_dataset=base.make_dataset(),
    )
    trainer.train(resume_from_checkpoint=resume)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return trainer, {
        "runtime": type(trainer.runtime).__name__,
        "weights": base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped)),
        "losses": [entry["loss"] for entry in logs],
        "grad_norms": [entry["grad_norm"] for entry in logs],
        "learning_rates": [entry["learning_rate"] for entry in logs],
        "seen": sorted(model.seen),
    }


def engine_facts(trainer: Any) -> dict[str, Any]:
    runtime = trainer.runtime
    engine = runtime.engine
    parameters = list(runtime.unwrap_model(trainer.model_wrapped).parameters())
    return {
        "engine": type(engine).__name__,
        "wrapped_is_engine": trainer.model_wrapped is engine,
        "zero_stage": engine.zero_optimization_stage(),
        "shards_parameters": runtime.shards_parameters,
        "checkpoint_format": runtime.checkpoint_format,
        "partitioned": all(hasattr(p, "ds_id") and p.numel() == 0 for p in parameters),
        "basic_optimizer": type(engine.basic_optimizer).__name__,
        "scheduler": type(trainer.lr_scheduler).__name__,
    }


def saved_model_weights(trainer: Any, out: str) -> dict[str, Any]:
    """``save_model`` (every process calls it); the main process reads the file back."""
    from safetensors.torch import load_file

    folder = os.path.join(out, "saved_model")
    trainer.save_model(folder)
    if not trainer.is_world_process_zero():
        return {}
    path = os.path.join(folder, "model.safetensors")
    return {"saved_weights": base.weights_of(load_file(path)), "saved_files": os.listdir(folder)}


def _export(trainer: Any, checkpoint: str) -> dict[str, Any]:
    """zero_to_fp32 of a checkpoint the Trainer wrote (main process only)."""
    from trainer_dist import export_deepspeed_checkpoint

    if not trainer.is_world_process_zero():
        return {}
    return base.weights_of(export_deepspeed_checkpoint(checkpoint))


# ------------------------------------------ the runtime's checkpoint API, by hand
def hand_loop(runtime: Any, out: str, *, resume: str | None = None) -> dict[str, Any]:
    """The loop's calls, written out: ``STEPS`` optimizer steps of ``ACCUMULATION``
    micro-steps over fixed batches; saves at ``SAVE_AT`` or resumes from there."""
    module = base.make_model()
    model, optimizer, scheduler = runtime.prepare_training(
        module,
        create_optimizer=lambda: torch.optim.AdamW(module.parameters(), lr=0.05),
        create_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 1 - s / STEPS
        ),
        num_training_steps=STEPS,
    )
    result: dict[str, Any] = {}
    first = 0
    if resume is not None:
        runtime.load_sharded_state(resume, model, optimizer)
        scheduler.load_state_dict(torch.load(os.path.join(resume, "scheduler.pt")))
        first = SAVE_AT
    for step in range(first, STEPS):
        _hand_step(runtime, model, optimizer, scheduler, step)
        if resume is None and step + 1 == SAVE_AT:
            result.update(_save(runtime, model, optimizer, scheduler, out))
    result["final"] = base.weights_of(runtime.state_dict(model))
    return result


def _linear_decay(step: int) -> float:
    return 1 - step / STEPS


def _hand_step(runtime: Any, model: Any, optimizer: Any, scheduler: Any, step: int) -> None:
    import torch.distributed as dist

    samples = base.make_dataset()
    for micro in range(ACCUMULATION):
        index = (step * ACCUMULATION + micro) * dist.get_world_size() + dist.get_rank()
        sample = samples[index % len(samples)]
        batch = {"x": sample["x"][None], "labels": sample["labels"][None]}
        last = micro == ACCUMULATION - 1
        with contextlib.nullcontext() if last else runtime.no_sync(model):
            loss = model(**batch)["loss"] / ACCUMULATION
            runtime.backward(loss)
    runtime.clip_grad_norm(model.parameters(), 1.0)
    if runtime.optimizer_step(optimizer):
        scheduler.step()
    model.zero_grad(set_to_none=True)


def _save(runtime: Any, model: Any, optimizer: Any, scheduler: Any, out: str) -> dict[str, Any]:
    from trainer_dist import export_deepspeed_checkpoint

    folder = os.path.join(out, "sharded")
    runtime.save_sharded_state(folder, model, optimizer)
    saved = base.weights_of(runtime.state_dict(model))
    result: dict[str, Any] = {"at_save": saved}
    if runtime.is_main_process:
        torch.save(scheduler.state_dict(), os.path.join(folder, "scheduler.pt"))
        exported_file = os.path.join(out, "exported.safetensors")
        exported = export_deepspeed_checkpoint(folder, exported_file)
        from safetensors.torch import load_file

        result["exported"] = base.weights_of(exported)
        result["exported_file"] = base.weights_of(load_file(exported_file))
        result["checkpoint_entries"] = sorted(os.listdir(folder))
    runtime.wait_for_everyone()
    return result


def resume_check(stage: int, out: str) -> dict[str, Any]:
    """Uninterrupted vs saved at ``SAVE_AT`` and resumed by a fresh engine."""
    from trainer_dist import ArgumentValues, DeepSpeedRuntime

    values = ArgumentValues(
        per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=ACCUMULATION,
        world_size=2,
        learning_rate=0.05,
        max_grad_norm=1.0,
    )
    folder = os.path.join(out, f"hand{stage}")

    def runtime() -> Any:
        return DeepSpeedRuntime(deepspeed_config(stage), values=values, use_cpu=True)

    first = hand_loop(runtime(), folder)
    resumed = hand_loop(runtime(), folder, resume=os.path.join(folder, "sharded"))
    return {"hand": first, "resumed": resumed["final"]}


# ---------------------------------------------------------------- scenarios
def run_zero(out: str) -> dict[str, Any]:
    """ZeRO-2 and ZeRO-3 against DDP (same global batch), save_model, the checkpoint
    API by hand, and a config that brings its own optimizer and scheduler."""
    _, ddp = train(os.path.join(out, "ddp"))
    report: dict[str, Any] = {"ddp": ddp, "stages": {}}
    for stage in (2, 3):
        folder = os.path.join(out, f"zero{stage}")
        config = deepspeed_config(stage)
        trainer, result = train(folder, config, save_strategy="steps", save_steps=3)
        result.update(engine_facts(trainer))
        result.update(saved_model_weights(trainer, folder))
        result["checkpoints"] = sorted(os.listdir(folder))
        result["final_export"] = _export(trainer, os.path.join(folder, "checkpoint-8"))
        _, resumed = train(
            os.path.join(out, f"resumed{stage}"),
            config,
            resume=os.path.join(folder, "checkpoint-3"),
        )
        result["trainer_resumed"] = resumed["weights"]
        result["resumed_losses"] = resumed["losses"]
        result.update(resume_check(stage, folder))
        report["stages"][str(stage)] = result
    sections = {
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        },
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "warmup_min_lr": "auto",
                "warmup_max_lr": "auto",
                "warmup_num_steps": "auto",
                "total_num_steps": "auto",
            },
        },
    }
    trainer, result = train(
        os.path.join(out, "config_optimizer"), deepspeed_config(2, **sections), warmup_steps=2
    )
    result.update(engine_facts(trainer))
    report["config_optimizer"] = result
    return report


def run_launcher(out: str, argv: list[str]) -> dict[str, Any]:
    """A user script: arguments parsed from the command line (the launcher adds its own,
    such as ``--local_rank``), then a plain ``Trainer.train()``."""
    from trainer import HfArgumentParser, Trainer, TrainingArguments

    parser = HfArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir", out,
            "--per_device_train_batch_size", str(MICRO_BATCH),
            "--gradient_accumulation_steps", str(ACCUMULATION),
            "--num_train_epochs", "2",
            "--learning_rate", "0.05",
            "--logging_steps", "1",
            "--save_strategy", "no",
            "--report_to", "none",
            "--disable_tqdm", "true",
            "--seed", "0",
            "--remove_unused_columns", "false",
            "--ddp_timeout", "120",
            *argv,
        ]
    )  # fmt: skip
    model = base.make_model()
    trainer = Trainer(model=model, args=args, train_dataset=base.make_dataset())
    trainer.train()
    return {
        "runtime": type(trainer.runtime).__name__,
        "zero_stage": trainer.runtime.zero_stage,
        "weights": base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped)),
        "seen": sorted(model.seen),
        "local_rank_argument": args.local_rank,
    }


def main(argv: list[str]) -> None:
    # The deepspeed launcher puts --local_rank=K first; it belongs to the parsed arguments.
    launcher = [a for a in argv if a.startswith(("--local_rank", "--local-rank"))]
    scenario, out, *rest = [a for a in argv if a not in launcher]
    rest = [*launcher, *rest]
    torch.set_num_threads(1)
    if scenario == "zero":  # then the user-script run, with the command line's arguments
        result = run_zero(out)
        result["launcher"] = run_launcher(os.path.join(out, "launcher"), rest)
    elif scenario == "launcher":
        result = run_launcher(out, rest)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    result.update(base.group_facts())
    import torch.distributed as dist

    with open(os.path.join(out, f"rank{dist.get_rank()}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1:])
    leave_group_and_exit()
