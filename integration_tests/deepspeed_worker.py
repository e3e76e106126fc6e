"""The training script the DeepSpeed tests launch (torchrun, ``deepspeed``, ``accelerate``).

Not a test module: its work runs only under ``__main__``. Each process runs one scenario
and writes what it observed to ``<out>/rank<N>.json``; ``test_distributed_deepspeed.py``
compares the files. Every report carries the group facts (world size and the ranks
all-gathered through a collective), so that a run in which each process trains alone
fails the tests.

    deepspeed --num_gpus 2 deepspeed_worker.py zero <out> --deepspeed ds.json --use_cpu true
    accelerate launch --config_file ds.yaml deepspeed_worker.py launcher <out>
    python deepspeed_worker.py one <out> <zero's out>        (one process, no launcher)
    torchrun --nproc_per_node 2 deepspeed_worker.py two <out> <one's out>
    torchrun --nproc_per_node 2 deepspeed_worker.py saving <out>

``zero`` ends with the ``saving`` scenario, in ``<out>/saving`` (after the user-script
run, so that the user script starts as it would in a launch of its own): the tests read
its report there, which spares a launch (~15 s of imports per process). ``saving`` still
runs alone, as above, to look into it by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
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
SAMPLES_PER_MICRO_STEP = 2  # across all processes: the global micro-batch of the hand loop
WEIGHT_DECAY = 0.1  # of the hand loop's weights; its biases have none (two groups)
# ZeRO-2 runs with its optimizer offloaded to the CPU (ZeRO-Offload, as large models are
# trained), ZeRO-3 without: checkpoints, exports and resumes are covered for both kinds.
OFFLOADED_STAGE = 2


def deepspeed_config(stage: int, **extra: Any) -> dict[str, Any]:
    """A config in the style of the reference's examples: everything shared is "auto"."""
    zero: dict[str, Any] = {
        "stage": stage,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto" if stage != 3 else 0,
    }
    if stage == 3:  # as in the reference's ZeRO-3 example (DeepSpeed's default is false)
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if stage == OFFLOADED_STAGE:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
        **extra,
    }


def offloaded(engine: Any) -> list[bool]:
    """Whether the engine's ZeRO optimizer keeps its state on the CPU, and whether ZeRO-3
    offloads the parameters too (what DeepSpeed made of the config)."""
    optimizer = engine.optimizer
    states = bool(getattr(optimizer, "cpu_offload", False))  # ZeRO-1/2
    states = states or bool(getattr(optimizer, "offload_optimizer", False))  # ZeRO-3
    return [states, bool(getattr(optimizer, "offload_param", False))]


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
        "flags": [trainer.is_deepspeed_enabled, trainer.is_fsdp_enabled],
        "zero_stage": engine.zero_optimization_stage(),
        "shards_parameters": runtime.shards_parameters,
        "checkpoint_format": runtime.checkpoint_format,
        "partitioned": all(hasattr(p, "ds_id") and p.numel() == 0 for p in parameters),
        "basic_optimizer": type(engine.basic_optimizer).__name__,
        "scheduler": type(trainer.lr_scheduler).__name__,
        "offloaded": offloaded(engine),
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
def two_groups(module: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with weight decay on the weights and none on the biases (as the Trainer
    groups them), so that a resume that mixes up the groups' settings shows."""
    named = list(module.named_parameters())
    weights = [p for name, p in named if name.endswith("weight")]
    biases = [p for name, p in named if not name.endswith("weight")]
    groups = [{"params": weights, "weight_decay": WEIGHT_DECAY}, {"params": biases}]
    return torch.optim.AdamW(groups, lr=0.05, weight_decay=0.0)


def hand_loop(
    runtime: Any, out: str, *, resume: str | None = None, with_optimizer: bool = True
) -> dict[str, Any]:
    """The loop's calls, written out: ``STEPS`` optimizer steps of ``ACCUMULATION``
    micro-steps over fixed batches; saves at ``SAVE_AT`` or resumes from there (with the
    optimizer state, or weights only)."""
    module = base.make_model()
    model, optimizer, scheduler = runtime.prepare_training(
        module,
        create_optimizer=lambda: two_groups(module),
        create_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 1 - s / STEPS
        ),
        num_training_steps=STEPS,
    )
    result: dict[str, Any] = {}
    first = 0
    if resume is not None:
        runtime.load_sharded_state(resume, model, optimizer if with_optimizer else None)
        result["loaded"] = base.weights_of(runtime.state_dict(model))
        scheduler.load_state_dict(torch.load(os.path.join(resume, "scheduler.pt")))
        first = SAVE_AT
    for step in range(first, STEPS):
        _hand_step(runtime, model, optimizer, scheduler, step)
        if resume is None and step + 1 == SAVE_AT:
            result.update(_save(runtime, model, optimizer, scheduler, out))
    result["final"] = base.weights_of(runtime.state_dict(model))
    return result


def _hand_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
    """This process's share of the global micro-batch: the same samples in every step
    whatever the number of processes (each takes ``SAMPLES_PER_MICRO_STEP / N``)."""
    import torch.distributed as dist

    samples = base.make_dataset()
    share = SAMPLES_PER_MICRO_STEP // dist.get_world_size()
    first = (step * ACCUMULATION + micro) * SAMPLES_PER_MICRO_STEP + dist.get_rank() * share
    chosen = [samples[(first + offset) % len(samples)] for offset in range(share)]
    return {key: torch.stack([sample[key] for sample in chosen]) for key in ("x", "labels")}


def _hand_step(runtime: Any, model: Any, optimizer: Any, scheduler: Any, step: int) -> None:
    for micro in range(ACCUMULATION):
        batch = _hand_batch(step, micro)
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


def hand_runtime(stage: int, world_size: int, **extra: Any) -> Any:
    """A DeepSpeed runtime for the hand loop on ``world_size`` processes."""
    from trainer_dist import ArgumentValues, DeepSpeedRuntime

    values = ArgumentValues(
        per_device_train_batch_size=SAMPLES_PER_MICRO_STEP // world_size,
        gradient_accumulation_steps=ACCUMULATION,
        world_size=world_size,
        learning_rate=0.05,
        max_grad_norm=1.0,
    )
    return DeepSpeedRuntime(deepspeed_config(stage, **extra), values=values, use_cpu=True)


def resume_check(stage: int, out: str) -> dict[str, Any]:
    """Uninterrupted vs saved at ``SAVE_AT`` and resumed by a fresh engine."""
    folder = os.path.join(out, f"hand{stage}")
    first = hand_loop(hand_runtime(stage, 2), folder)
    resumed = hand_loop(hand_runtime(stage, 2), folder, resume=os.path.join(folder, "sharded"))
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
    result["second_run_learning_rates"] = second_run_learning_rates(trainer)
    report["config_optimizer"] = result
    trainer, result = train(  # torch_compile through engine.compile ("eager": no C++ build)
        os.path.join(out, "compiled"), deepspeed_config(2), torch_compile_backend="eager"
    )
    result["is_compiled"] = bool(trainer.runtime.engine.is_compiled)
    result["second_run_learning_rates"] = second_run_learning_rates(trainer)
    report["compiled"] = result
    return report


def second_run_learning_rates(trainer: Any) -> list[float]:
    """Train the same trainer again: the learning rates its second run logged."""
    trainer.train()
    return [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]


def fingerprint(folder: str) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (to show that loading
    neither changed a checkpoint nor left anything beside it)."""
    digests = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def resume_elsewhere(stage: int, source: str, out: str) -> dict[str, Any]:
    """Resume, on this run's number of processes, the checkpoints ``source`` holds (those
    of a run on another number): through the Trainer (``checkpoint-3``, the same global
    batch) and by hand (``hand<stage>/sharded``) with and without the optimizer state."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # a launcher's, else one process
    before = fingerprint(source)
    _, trainer = train(
        os.path.join(out, f"resumed{stage}"),
        deepspeed_config(stage),
        resume=os.path.join(source, "checkpoint-3"),
        per_device_train_batch_size=SAMPLES_PER_MICRO_STEP // world_size,
    )
    sharded = os.path.join(source, f"hand{stage}", "sharded")
    hand = hand_loop(hand_runtime(stage, world_size), out, resume=sharded)
    weights_only = hand_loop(
        hand_runtime(stage, world_size), out, resume=sharded, with_optimizer=False
    )
    return {
        "trainer": trainer,
        "hand": hand,
        "weights_only": weights_only,
        "source_unchanged": fingerprint(source) == before,
    }


def refused_optimizer(source: str) -> dict[str, Any]:
    """An SGD run asked to take the Adam state of a checkpoint written by another number
    of processes: the error, and whether anything was written beside the checkpoint."""
    runtime = hand_runtime(2, 1)
    module = base.make_model()
    model, optimizer, _ = runtime.prepare_training(
        module,
        create_optimizer=lambda: torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9),
        create_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
        num_training_steps=STEPS,
    )
    parent = os.path.dirname(source)
    before = sorted(os.listdir(parent))
    try:
        runtime.load_sharded_state(source, model, optimizer)
    except ValueError as error:
        return {"error": str(error), "unchanged": sorted(os.listdir(parent)) == before}
    return {"error": None}


def run_one(out: str, checkpoints: str) -> dict[str, Any]:
    """One process: resume the 2-process checkpoints of ``zero`` (in ``checkpoints``), and
    train the same runs from scratch, saving the checkpoints ``two`` resumes."""
    report: dict[str, Any] = {"stages": {}}
    for stage in (2, 3):
        result = resume_elsewhere(stage, os.path.join(checkpoints, f"zero{stage}"), out)
        folder = os.path.join(out, f"zero{stage}")
        _, result["single"] = train(
            folder,
            deepspeed_config(stage),
            per_device_train_batch_size=SAMPLES_PER_MICRO_STEP,
            save_strategy="steps",
            save_steps=3,
        )
        hand_folder = os.path.join(folder, f"hand{stage}")
        result["single_hand"] = hand_loop(hand_runtime(stage, 1), hand_folder)
        report["stages"][str(stage)] = result
    sharded = os.path.join(checkpoints, "zero2", "hand2", "sharded")
    report["refused"] = refused_optimizer(sharded)
    return report


def run_two(out: str, checkpoints: str) -> dict[str, Any]:
    """Two processes: resume the 1-process checkpoints of ``one`` (in ``checkpoints``)."""
    stages = {
        str(stage): resume_elsewhere(stage, os.path.join(checkpoints, f"zero{stage}"), out)
        for stage in (2, 3)
    }
    return {"stages": stages}


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
        "offloaded": offloaded(trainer.runtime.engine),
        "weights": base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped)),
        "seen": sorted(model.seen),
        "local_rank_argument": args.local_rank,
    }


# ------------------------------------------------- saving (``saving`` scenario)
LM_VOCAB = 32
LM_LENGTH = 8
LM_ROWS = 16  # 4 optimizer steps of 2 processes x 2 rows


def language_trainer(out: str, stage: int, **overrides: Any) -> Any:
    """A Trainer for a tiny Llama (tied embeddings under ZeRO-3) under ``stage``."""
    from trainer import Trainer
    from trainer_testing.language import padded_token_sequences, tiny_llama

    gather = overrides.pop("gather", True)
    config = deepspeed_config(stage)
    if stage == 3:
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = gather
    args = base.training_args(
        out, deepspeed=config, num_train_epochs=1, learning_rate=0.01, **overrides
    )
    model = tiny_llama(LM_VOCAB, 16, seed=5, tied=stage == 3)
    data = padded_token_sequences(LM_ROWS, LM_LENGTH, LM_VOCAB, seed=6)
    return Trainer(model=model, args=args, train_dataset=data)


def pretrained_weights(folder: str) -> dict[str, list[float]] | str:
    """The weights ``from_pretrained(folder)`` builds, on this process alone (the ZeRO-3
    arguments registered zero.Init, which would partition, a collective, while loading);
    the error when it cannot, so that the other scenarios still report."""
    from transformers import AutoModelForCausalLM
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        return base.weights_of(AutoModelForCausalLM.from_pretrained(folder).state_dict())
    except (OSError, ValueError) as error:
        return f"from_pretrained({folder!r}) failed: {error}"


def listing(folder: str) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def checkpoints_hold_the_model(out: str, stage: int) -> dict[str, Any]:
    """Train with checkpoints; what the last one holds and ``from_pretrained`` reads."""
    trainer = language_trainer(out, stage, save_strategy="steps", save_steps=2)
    trainer.train()
    weights = base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped))
    if not trainer.is_world_process_zero():
        return {}
    folder = os.path.join(out, "checkpoint-4")
    return {
        "files": listing(folder),
        "weights": weights,
        "pretrained": pretrained_weights(folder),
    }


def save_only_model(out: str) -> dict[str, Any]:
    """ZeRO-3 with ``save_only_model``: the checkpoint, then a resume from it."""
    trainer = language_trainer(out, 3, save_strategy="steps", save_steps=4, save_only_model=True)
    trainer.train()
    folder = os.path.join(out, "checkpoint-4")
    weights = base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped))
    report: dict[str, Any] = {"files": listing(folder)}
    if trainer.is_world_process_zero():
        report.update(weights=weights, pretrained=pretrained_weights(folder))
    trainer.runtime.wait_for_everyone()  # read before anyone resumes
    again = language_trainer(os.path.join(out, "again"), 3, save_only_model=True)
    try:
        again.train(resume_from_checkpoint=folder)
    except ValueError as error:
        report["resume_error"] = str(error)
    return report


def exported_or_error(folder: str) -> dict[str, list[float]] | str:
    """The weights ``export_deepspeed_checkpoint`` merges from ``folder``, or its error."""
    from trainer_dist import export_deepspeed_checkpoint

    try:
        return base.weights_of(export_deepspeed_checkpoint(folder))
    except FileNotFoundError as error:
        return str(error)


class Warnings(logging.Handler):
    """Collects the warnings of the loop's saving module."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def not_gathered(out: str) -> dict[str, Any]:
    """ZeRO-3 with ``stage3_gather_16bit_weights_on_model_save: false``: checkpoints and
    ``save_model`` hold the config and DeepSpeed's files, from which the weights export."""
    caught = Warnings()
    logging.getLogger("trainer_loop._saving").addHandler(caught)
    trainer = language_trainer(out, 3, gather=False, save_strategy="steps", save_steps=4)
    trainer.train()
    weights = base.weights_of(trainer.runtime.state_dict(trainer.model_wrapped))
    saved = os.path.join(out, "saved")
    trainer.save_model(saved)
    logging.getLogger("trainer_loop._saving").removeHandler(caught)
    checkpoint = os.path.join(out, "checkpoint-4")
    report: dict[str, Any] = {"warnings": caught.messages}
    if trainer.is_world_process_zero():
        report.update(
            checkpoint_files=listing(checkpoint),
            saved_files=listing(saved),
            weights=weights,
            exported=exported_or_error(saved),
            checkpoint_exported=exported_or_error(checkpoint),
        )
    return report


def no_warm_up(out: str) -> dict[str, Any]:
    """DeepSpeed's warm-up schedules with ``warmup_steps=0`` (the default)."""
    runs = {}
    for schedule in ("WarmupLR", "WarmupDecayLR", "WarmupCosineLR"):
        params = {"warmup_num_steps": "auto"}
        if schedule != "WarmupCosineLR":  # which warms up to the optimizer's rate
            params.update(warmup_min_lr="auto", warmup_max_lr="auto")
        if schedule != "WarmupLR":
            params["total_num_steps"] = "auto"
        section = {"type": schedule, "params": params}
        trainer, result = train(os.path.join(out, schedule), deepspeed_config(2, scheduler=section))
        result["warmup_num_steps"] = trainer.runtime.config.get("scheduler.params.warmup_num_steps")
        runs[schedule] = result
    return runs


def run_saving(out: str) -> dict[str, Any]:
    """What DeepSpeed checkpoints and ``save_model`` hold, and runs without warm-up."""
    return {
        "checkpoints": {
            str(stage): checkpoints_hold_the_model(os.path.join(out, f"lm{stage}"), stage)
            for stage in (2, 3)
        },
        "save_only_model": save_only_model(os.path.join(out, "only_model")),
        "not_gathered": not_gathered(os.path.join(out, "not_gathered")),
        "no_warm_up": no_warm_up(os.path.join(out, "no_warm_up")),
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
        result["saving"] = run_saving(os.path.join(out, "saving"))
    elif scenario == "launcher":
        result = run_launcher(out, rest)
    elif scenario == "one":
        result = run_one(out, rest[0])
    elif scenario == "two":
        result = run_two(out, rest[0])
    elif scenario == "saving":
        result = run_saving(out)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    base.write_group_report(out, result)


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1:])
    leave_group_and_exit()
