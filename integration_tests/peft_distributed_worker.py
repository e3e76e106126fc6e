"""The LoRA training script ``test_peft_distributed.py`` launches on 2 processes (torchrun).

Not a test module: its work runs only under ``__main__``. A tiny Llama wrapped by
``peft.get_peft_model`` (LoRA on q_proj and v_proj) is trained by the Trainer under FSDP2
or DeepSpeed ZeRO-3, as users fine-tune adapters with either; each process writes what
it observed to ``<out>/rank<N>.json``.

    torchrun --nproc_per_node 2 peft_distributed_worker.py <out>

Under each (FSDP, then ZeRO-3, in the same process group) it trains 8 steps with
checkpoints at 4 and 8 and ``load_best_model_at_end``, saves the model with
``save_model`` and, on the main process, loads that folder with
``PeftModel.from_pretrained`` (one process, no sharding) to compare its outputs with the
trained sharded model's; then it stops another run at step 6 and resumes it from
checkpoint-4.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_distributed_worker as base  # the group facts and the report writer

STEPS = 8
SAVE_STEPS = 4
STOP_AT = 6
PER_DEVICE_BATCH = 2
SEQUENCE = 16
VOCABULARY = 64

ZERO3 = {
    "train_batch_size": "auto",
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "zero_optimization": {
        "stage": 3,
        "stage3_param_persistence_threshold": 0,
        "stage3_gather_16bit_weights_on_model_save": True,
    },
}
VARIANTS: dict[str, dict[str, Any]] = {
    "fsdp": {"fsdp": "full_shard auto_wrap", "fsdp_config": {"use_orig_params": True}},
    "zero3": {"deepspeed": ZERO3},
}


class Tokens(torch.utils.data.Dataset):
    """Random token rows, the same on every process and in the test's one-process run."""

    def __init__(self, size: int = 32, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCABULARY, (size, SEQUENCE), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def make_base() -> Any:
    from trainer_testing.language import tiny_llama

    return tiny_llama(VOCABULARY, max_positions=64, layers=2)


def make_lora() -> Any:
    import peft

    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return peft.get_peft_model(make_base(), config)


def training_args(out: str, **overrides: Any) -> Any:
    from trainer import TrainingArguments

    settings: dict[str, Any] = {
        "output_dir": out,
        "per_device_train_batch_size": PER_DEVICE_BATCH,
        "max_steps": STEPS,
        "save_steps": SAVE_STEPS,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "report_to": "none",
        "seed": 0,
        "use_cpu": True,
        "disable_tqdm": True,
        "save_safetensors": True,
        "ddp_timeout": 120,
        **overrides,
    }
    return TrainingArguments(**settings)


def stop_at(step: int) -> Any:
    from trainer import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def losses_of(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def gathered_state(trainer: Any) -> dict[str, torch.Tensor]:
    """The model's full state dict on the main process (a collective; ``{}`` elsewhere)."""
    return trainer.runtime.state_dict(trainer.model_wrapped)


def adapter_of(state: dict[str, torch.Tensor], module: Any) -> dict[str, list[float]]:
    import peft

    adapter = peft.get_peft_model_state_dict(module, state_dict=state)
    return base.weights_of(adapter)


def base_unchanged(state: dict[str, torch.Tensor]) -> bool:
    """Whether every non-adapter weight still equals the freshly built model's."""
    fresh = make_lora().state_dict()
    frozen = [name for name in fresh if "lora_" not in name]
    return all(torch.equal(state[name].float(), fresh[name].float()) for name in frozen)


def logits_of(model: Any) -> torch.Tensor:
    """Outputs on fixed inputs (every process runs the forward: sharded models gather)."""
    ids = Tokens(4, seed=5).ids
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def checkpoint_files(folder: str) -> dict[str, Any]:
    """The names in a checkpoint, the shapes in its adapter file, and (DeepSpeed) how many
    frozen parameters its ZeRO files hold."""
    names = sorted(os.listdir(folder))
    facts: dict[str, Any] = {"names": names}
    adapter = os.path.join(folder, "adapter_model.safetensors")
    if os.path.isfile(adapter):
        from safetensors.torch import load_file

        facts["adapter_shapes"] = {k: list(v.shape) for k, v in load_file(adapter).items()}
    tags = [name for name in names if name.startswith("global_step")]
    if tags:
        facts["zero_frozen"] = _zero_frozen_counts(os.path.join(folder, tags[0]))
    if "pytorch_model_fsdp_0" in names:
        facts["dcp_keys"] = _dcp_keys(os.path.join(folder, "pytorch_model_fsdp_0"))
    return facts


def _zero_frozen_counts(tag_folder: str) -> list[int]:
    """Frozen parameters (shapes or fragments) and module entries in each ZeRO model file."""
    counts: list[int] = []
    for name in sorted(os.listdir(tag_folder)):
        if name.endswith("model_states.pt"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # A file this run wrote; DeepSpeed pickles its config objects in it.
                states = torch.load(os.path.join(tag_folder, name), weights_only=False)
            counts.append(len(states.get("frozen_param_fragments") or {}))
            counts.append(len(states.get("frozen_param_shapes") or {}))
    return counts


def _dcp_keys(folder: str) -> list[str]:
    from torch.distributed.checkpoint import FileSystemReader

    return sorted(FileSystemReader(folder).read_metadata().state_dict_metadata)


def run_variant(out: str, variant: dict[str, Any]) -> dict[str, Any]:
    """Uninterrupted, stopped and resumed runs under one ``variant`` of the arguments."""
    from trainer import Trainer

    best_model_at_end = {
        "eval_strategy": "steps",
        "eval_steps": SAVE_STEPS,
        "load_best_model_at_end": True,
        "metric_for_best_model": "loss",
    }
    args = training_args(f"{out}/full", **best_model_at_end, **variant)
    trainer = Trainer(
        model=make_lora(), args=args, train_dataset=Tokens(), eval_dataset=Tokens(8, seed=2)
    )
    trainer.train()
    module = trainer.runtime.unwrap_model(trainer.model_wrapped)
    state = gathered_state(trainer)
    result: dict[str, Any] = {
        "runtime": type(trainer.runtime).__name__,
        "trainable": sorted(n for n, p in module.named_parameters() if p.requires_grad),
        "losses": losses_of(trainer),
        "checkpoint": checkpoint_files(f"{out}/full/checkpoint-{SAVE_STEPS}"),
        "best_step": trainer.state.best_global_step,
    }
    trainer.save_model(f"{out}/saved")
    logits = logits_of(trainer.model_wrapped)
    if trainer.is_world_process_zero():
        result["adapter"] = adapter_of(state, module)  # the best checkpoint's, loaded back
        result["adapter_files"] = {
            step: _adapter_file(f"{out}/full/checkpoint-{step}") for step in (SAVE_STEPS, STEPS)
        }
        result["base_unchanged"] = base_unchanged(state)
        result["saved"] = sorted(os.listdir(f"{out}/saved"))
        result["reloaded_difference"] = _reloaded_difference(f"{out}/saved", logits)
    result.update(_stop_and_resume(f"{out}/stopped", variant))
    return result


def _adapter_file(folder: str) -> dict[str, list[float]]:
    from safetensors.torch import load_file

    return base.weights_of(load_file(os.path.join(folder, "adapter_model.safetensors")))


def _reloaded_difference(folder: str, logits: torch.Tensor) -> float:
    """Largest difference between the trained model's outputs and those of the adapter
    ``save_model`` wrote, loaded on one process with peft's own loader."""
    import peft

    reloaded = peft.PeftModel.from_pretrained(make_base(), folder)
    return float((logits_of(reloaded) - logits).abs().max())


def _stop_and_resume(out: str, variant: dict[str, Any]) -> dict[str, Any]:
    from trainer import Trainer

    args = training_args(out, **variant)
    stopped = Trainer(
        model=make_lora(), args=args, train_dataset=Tokens(), callbacks=[stop_at(STOP_AT)]
    )
    stopped.train()
    resumed = Trainer(model=make_lora(), args=args, train_dataset=Tokens())
    resumed.train(resume_from_checkpoint=f"{out}/checkpoint-{SAVE_STEPS}")
    state = gathered_state(resumed)
    result: dict[str, Any] = {
        "resumed_losses": losses_of(resumed),  # steps 1-4 come from checkpoint-4's state
    }
    if resumed.is_world_process_zero():
        result["resumed_adapter"] = adapter_of(
            state, resumed.runtime.unwrap_model(resumed.model_wrapped)
        )
    return result


def main(out: str) -> None:
    """Both variants in one launch (each launch costs ~15 s of imports per process)."""
    torch.set_num_threads(1)
    reports = {name: run_variant(f"{out}/{name}", variant) for name, variant in VARIANTS.items()}
    base.write_group_report(out, reports)


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    main(sys.argv[1])
    leave_group_and_exit()
