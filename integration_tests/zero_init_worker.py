"""The script the zero.Init tests launch: ZeRO-3 arguments first, then ``from_pretrained``.

Not a test module: its work runs only under ``__main__``. Each process writes what it
observed to ``<out>/rank<N>.json``; ``test_deepspeed_zero_init.py`` compares the files.

    torchrun --nproc_per_node 2 zero_init_worker.py torchrun <out> <model> <ds.json>
    accelerate launch --config_file acc.yaml zero_init_worker.py accelerate <out> <model>

``torchrun``: arguments with ``deepspeed=<file>``, a model loaded (partitioned by
zero.Init) and trained; then a partitioned model evaluated, predicted (generating, through
a ``Seq2SeqTrainer``) and only then trained; a partitioned model evaluated with
``bf16_full_eval``, and a fresh one trained with it (in fp32); then the same training
with a model loaded whole (the registration withdrawn), and a whole model evaluated
(partitioned by the inference engine) before it trains. ``accelerate``: arguments
without ``deepspeed`` under an accelerate config with a ZeRO-3 config file and
``zero3_init_flag: true``, then the same load and training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_distributed_worker as base  # the shared helpers (group facts, weights)

VOCAB = 32
LENGTH = 8
ROWS = 16
EVAL_ROWS = 7  # odd: the last step of 2 processes repeats a sample
NEW_TOKENS = 3


def dataset() -> list[dict[str, torch.Tensor]]:
    from trainer_testing.language import padded_token_sequences

    return padded_token_sequences(ROWS, LENGTH, VOCAB, seed=1)


def eval_dataset() -> list[dict[str, torch.Tensor]]:
    from trainer_testing.language import padded_token_sequences

    return padded_token_sequences(EVAL_ROWS, LENGTH, VOCAB, seed=2)


# One row per evaluation batch: each sample's loss is then its own on any number of
# processes, so eval_loss compares with a one-process run.
TRAINING_VALUES = {
    "per_device_train_batch_size": 2,
    "per_device_eval_batch_size": 1,
    "num_train_epochs": 1,
    "learning_rate": 0.01,
}


def arguments(out: str, **overrides: Any) -> Any:
    return base.training_args(out, **{**TRAINING_VALUES, **overrides})


def forward_hooks(module: Any) -> int:
    """Forward (pre-)hooks on ``module`` and its submodules: what engines register."""
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules())


def loaded(model_folder: str) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.float32)


def difference_to_file(state: dict[str, torch.Tensor], model_folder: str) -> float | None:
    """The largest difference between ``state`` and the saved weights (``None`` for the
    empty dict a ZeRO-3 gather gives processes other than the main one)."""
    from safetensors.torch import load_file

    if not state:
        return None
    saved = load_file(os.path.join(model_folder, "model.safetensors"))
    return max(float((state[key].float() - saved[key].float()).abs().max()) for key in saved)


def partition_facts(model: Any, model_folder: str) -> dict[str, Any]:
    """Whether ``model`` is partitioned, and how far its gathered weights are from the file."""
    import deepspeed

    parameters = list(model.parameters())
    facts: dict[str, Any] = {
        "all_have_ds_id": all(hasattr(p, "ds_id") for p in parameters),
        "local_numel": sum(p.numel() for p in parameters),
        "partition_numel": sum(p.ds_tensor.numel() for p in parameters if hasattr(p, "ds_tensor")),
        "full_numel": sum(getattr(p, "ds_numel", p.numel()) for p in parameters),
    }
    with deepspeed.zero.GatheredParameters(parameters, enabled=facts["all_have_ds_id"]):
        facts["max_difference_to_file"] = difference_to_file(model.state_dict(), model_folder)
    return facts


def save_before_training(model: Any, args: Any, model_folder: str) -> dict[str, Any]:
    """``save_model`` on a partitioned model before any engine exists: the parameters
    are gathered (the config file asks for 16-bit weights on save), so the file holds
    the loaded weights, not the empty local tensors, and the model stays partitioned."""
    from safetensors.torch import load_file

    from trainer import Trainer

    folder = os.path.join(args.output_dir, "saved_before_training")
    trainer = Trainer(model=model, args=args)
    trainer.save_model(folder)
    report: dict[str, Any] = {
        "still_partitioned": all(p.numel() == 0 for p in model.parameters()),
        "engines": [trainer.runtime.engine, trainer.runtime.inference_engine] == [None, None],
    }
    if trainer.is_world_process_zero():
        saved = load_file(os.path.join(folder, "model.safetensors"))
        source = load_file(os.path.join(model_folder, "model.safetensors"))
        report["files"] = sorted(os.listdir(folder))
        report["shapes"] = {key: list(value.shape) for key, value in saved.items()}
        report["source_shapes"] = {key: list(value.shape) for key, value in source.items()}
        if report["shapes"] == report["source_shapes"]:
            report["difference_to_file"] = difference_to_file(saved, model_folder)
    return report


def train(model: Any, args: Any) -> dict[str, Any]:
    from trainer import Trainer

    trainer = Trainer(model=model, args=args, train_dataset=dataset())
    trainer.train()
    return trained(trainer)


def trained(trainer: Any) -> dict[str, Any]:
    """What a run reached: weights, losses, and the evaluation after training."""
    runtime = trainer.runtime
    return {
        "runtime": type(runtime).__name__,
        "zero_stage": runtime.zero_stage,
        "weights": base.weights_of(runtime.state_dict(trainer.model_wrapped)),
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "hooks": forward_hooks(trainer.model),
        "eval_loss_after": trainer.evaluate(eval_dataset())["eval_loss"],
    }


def evaluate_then_train(out: str, model_folder: str, deepspeed_file: str) -> dict[str, Any]:
    """``evaluate`` and ``predict`` (generating) on a partitioned model straight after
    ``from_pretrained``, then ``train``: the inference engine, then the training one."""
    from trainer import Seq2SeqTrainer, Seq2SeqTrainingArguments

    args = Seq2SeqTrainingArguments(
        output_dir=out,
        logging_steps=2,  # as base.training_args, which the run without evaluation used
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,
        ddp_timeout=120,
        predict_with_generate=True,
        deepspeed=deepspeed_file,
        **TRAINING_VALUES,
    )
    model = loaded(model_folder)
    hooks_loaded = forward_hooks(model)
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=dataset(), eval_dataset=eval_dataset()
    )
    metrics = trainer.evaluate()
    runtime = trainer.runtime
    inference_engine = runtime.inference_engine
    output = trainer.predict(eval_dataset(), max_new_tokens=NEW_TOKENS)
    report = {
        "partitioned": all(hasattr(p, "ds_id") for p in model.parameters()),
        "eval_loss": metrics["eval_loss"],
        "test_loss": output.metrics["test_loss"],
        "predictions": output.predictions.tolist(),
        "engine_before_training": type(inference_engine).__name__,
        "same_engine_for_predict": runtime.inference_engine is inference_engine,
        "hooks_loaded": hooks_loaded,
        "hooks_evaluating": forward_hooks(model),
        # What save_model would write before training: gathered by the inference engine.
        "gathered_to_file": difference_to_file(runtime.state_dict(model), model_folder),
    }
    trainer.train()
    report["inference_engine_after_training"] = runtime.inference_engine is not None
    report["training_engine_is_new"] = runtime.engine is not inference_engine
    report["training_engine_has_optimizer"] = runtime.engine.basic_optimizer is not None
    report.update(trained(trainer))
    return report


def registration(args: Any) -> dict[str, Any]:
    """What the arguments hook did while the arguments were built."""
    import torch.distributed as dist
    from transformers.integrations import deepspeed_config, is_deepspeed_zero3_enabled

    registered = getattr(args, "hf_deepspeed_config", None)
    return {
        "registered": registered is not None,
        "zero3_enabled": is_deepspeed_zero3_enabled(),
        "registered_config": deepspeed_config(),
        "group_before_model": dist.is_initialized(),
        "backend": dist.get_backend() if dist.is_initialized() else None,
    }


def run_torchrun(out: str, model_folder: str, deepspeed_file: str) -> dict[str, Any]:
    from transformers.integrations import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    args = arguments(os.path.join(out, "zero_init"), deepspeed=deepspeed_file)
    report = registration(args)
    model = loaded(model_folder)
    report["partition"] = partition_facts(model, model_folder)
    report["saved_before_training"] = save_before_training(model, args, model_folder)
    report["zero_init"] = train(model, args)
    report["evaluate_first"] = evaluate_then_train(
        os.path.join(out, "evaluate_first"), model_folder, deepspeed_file
    )
    report["bf16_full_eval"] = evaluate_in_bf16(
        os.path.join(out, "bf16"), model_folder, deepspeed_file
    )
    # The same run on a model loaded whole: arguments first, then the registration
    # withdrawn, as a user who does not want zero.Init would see it.
    whole_args = arguments(os.path.join(out, "whole"), deepspeed=deepspeed_file)
    unset_hf_deepspeed_config()
    whole = loaded(model_folder)
    report["whole_partitioned"] = any(hasattr(p, "ds_id") for p in whole.parameters())
    report["whole"] = train(whole, whole_args)
    report["zero3_enabled_after_withdrawal"] = is_deepspeed_zero3_enabled()
    report["whole_evaluate_first"] = evaluate_whole_then_train(
        os.path.join(out, "whole_evaluate_first"), model_folder, deepspeed_file
    )
    return report


def evaluate_in_bf16(out: str, model_folder: str, deepspeed_file: str) -> dict[str, Any]:
    """``bf16_full_eval`` (without ``bf16``, the config has no precision section): the
    model is partitioned in fp32 (the registered config trains in fp32), the runtime
    casts the partitions for the inference engine, which evaluates in bf16. Then the
    same arguments train a fresh model: in fp32, as without ``bf16_full_eval``."""
    from trainer import Trainer

    args = arguments(out, deepspeed=deepspeed_file, bf16_full_eval=True)
    model = loaded(model_folder)
    report: dict[str, Any] = {
        "registered_precision": sorted({"fp16", "bf16"} & set(args.hf_deepspeed_config.config)),
        "partition_dtypes": sorted({str(p.ds_tensor.dtype) for p in model.parameters()}),
    }
    trainer = Trainer(model=model, args=args, eval_dataset=eval_dataset())
    report["partitioned"] = all(hasattr(p, "ds_id") for p in model.parameters())
    report["eval_loss"] = trainer.evaluate()["eval_loss"]
    report["inference_engine_bf16"] = trainer.runtime.inference_engine.bfloat16_enabled()
    report["training_config_precision"] = trainer.runtime.config.mixed_precision
    training = Trainer(model=loaded(model_folder), args=args, train_dataset=dataset())
    training.train()
    report["training_engine_bf16"] = training.runtime.engine.bfloat16_enabled()
    report["trained"] = trained(training)
    return report


def evaluate_whole_then_train(out: str, model_folder: str, deepspeed_file: str) -> dict[str, Any]:
    """A model loaded whole (no zero.Init) evaluated under the ZeRO-3 config before
    training: the inference engine partitions it, and training continues from there."""
    from transformers.integrations import unset_hf_deepspeed_config

    from trainer import Trainer

    args = arguments(out, deepspeed=deepspeed_file)
    unset_hf_deepspeed_config()
    model = loaded(model_folder)
    report = {"whole_when_loaded": not any(hasattr(p, "ds_id") for p in model.parameters())}
    trainer = Trainer(model=model, args=args, train_dataset=dataset(), eval_dataset=eval_dataset())
    report["eval_loss"] = trainer.evaluate()["eval_loss"]
    report["engine_before_training"] = type(trainer.runtime.inference_engine).__name__
    report["partitioned_by_evaluation"] = all(hasattr(p, "ds_id") for p in model.parameters())
    trainer.train()
    report.update(trained(trainer))
    return report


def run_accelerate(out: str, model_folder: str) -> dict[str, Any]:
    args = arguments(os.path.join(out, "accelerate"))
    report = registration(args)
    model = loaded(model_folder)
    report["partition"] = partition_facts(model, model_folder)
    report["zero_init"] = train(model, args)
    return report


def main(argv: list[str]) -> None:
    scenario, out, model_folder, *rest = argv
    torch.set_num_threads(1)
    if scenario == "torchrun":
        result = run_torchrun(out, model_folder, rest[0])
    elif scenario == "accelerate":
        result = run_accelerate(out, model_folder)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    base.write_group_report(out, result)


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1:])
    leave_group_and_exit()
