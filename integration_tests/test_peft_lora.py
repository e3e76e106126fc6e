"""LoRA fine-tuning with the real ``peft`` library, as users run it with the reference.

A ``peft`` model's checkpoints hold its adapter (``adapter_model.*`` and
``adapter_config.json``), not the frozen base weights, which can be hundreds of times
larger; resuming and ``load_best_model_at_end`` load the adapter back, and
``save_model`` writes what ``PeftModel.save_pretrained`` writes, so that
``PeftModel.from_pretrained(base, folder)`` reads it. Checkpoints the reference Trainer
wrote for such a model resume with ours.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from trainer import Trainer, TrainerCallback, TrainingArguments

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

# peft 0.21 reads transformers 5.24's deprecated ``is_gradient_checkpointing`` when it
# wraps a model: a warning between those two libraries, not about our code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)

_FULL_WEIGHTS = {"model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}


class Tokens(Dataset):
    def __init__(self, size: int = 32, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 64, (size, 16), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _base() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def _lora(adapter_name: str = "default") -> torch.nn.Module:
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    return peft.get_peft_model(_base(), config, adapter_name=adapter_name)


def _adapter(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = peft.get_peft_model_state_dict(model, adapter_name=model.active_adapter)
    return {k: v.detach().clone() for k, v in state.items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _args(output_dir: Path, **overrides) -> TrainingArguments:
    settings = dict(
        per_device_train_batch_size=4,
        max_steps=12,
        save_steps=4,
        learning_rate=1e-2,
        report_to=[],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        save_safetensors=True,
    )
    settings.update(overrides)
    return TrainingArguments(output_dir=str(output_dir), **settings)


def _train(output_dir: Path, **overrides) -> tuple[Trainer, torch.nn.Module]:
    model = _lora()
    trainer = Trainer(model=model, args=_args(output_dir, **overrides), train_dataset=Tokens())
    trainer.train()
    return trainer, model


@pytest.mark.parametrize("safetensors", [True, False])
def test_checkpoints_hold_the_adapter_and_the_resume_state_not_the_full_weights(
    tmp_path: Path, safetensors: bool
) -> None:
    _train(tmp_path, max_steps=4, save_safetensors=safetensors)
    checkpoint = tmp_path / "checkpoint-4"
    names = set(os.listdir(checkpoint))
    adapter = "adapter_model.safetensors" if safetensors else "adapter_model.bin"
    assert {adapter, "adapter_config.json", "optimizer.pt", "scheduler.pt"} <= names
    assert {"rng_state.pth", "trainer_state.json", "training_args.bin"} <= names
    assert not names & _FULL_WEIGHTS
    base_bytes = sum(p.numel() * p.element_size() for p in _base().parameters())
    assert os.path.getsize(checkpoint / adapter) * 10 < base_bytes


def test_a_stopped_and_resumed_lora_run_ends_with_the_adapter_of_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    _, uninterrupted = _train(tmp_path / "full")
    model = _lora()
    args = _args(tmp_path / "stopped")
    Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[StopAt(6)]).train()
    assert not set(os.listdir(tmp_path / "stopped" / "checkpoint-4")) & _FULL_WEIGHTS
    resumed = _lora()
    Trainer(model=resumed, args=args, train_dataset=Tokens()).train(resume_from_checkpoint=True)
    assert _same(_adapter(resumed), _adapter(uninterrupted))


def test_an_adapter_with_its_own_name_is_checkpointed_in_its_folder_and_resumes(
    tmp_path: Path,
) -> None:
    """PEFT saves an adapter not named "default" in a sub-folder of that name, as the
    reference's checkpoints then hold it: such folders are checkpoints, without the full
    weights beside them, and resume into the adapter of that name."""
    from trainer.trainer_utils import get_last_checkpoint

    full = _lora("mine")
    Trainer(model=full, args=_args(tmp_path / "full"), train_dataset=Tokens()).train()
    args = _args(tmp_path / "stopped")
    stopped = Trainer(model=_lora("mine"), args=args, train_dataset=Tokens(), callbacks=[StopAt(6)])
    stopped.train()
    checkpoint = tmp_path / "stopped" / "checkpoint-4"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(
        os.listdir(checkpoint / "mine")
    )
    assert not set(os.listdir(checkpoint)) & _FULL_WEIGHTS
    assert get_last_checkpoint(str(tmp_path / "stopped")) == str(checkpoint)
    resumed = _lora("mine")
    Trainer(model=resumed, args=args, train_dataset=Tokens()).train(
        resume_from_checkpoint=str(checkpoint)
    )
    assert resumed.active_adapter == "mine"
    assert _same(_adapter(resumed), _adapter(full))


def test_load_best_model_at_end_loads_the_best_adapter(tmp_path: Path) -> None:
    model = _lora()
    saved: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            saved[state.global_step] = _adapter(model)

    args = _args(
        tmp_path,
        eval_strategy="steps",
        eval_steps=4,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(),
        eval_dataset=Tokens(8, seed=2),
        callbacks=[Snapshot()],
    )
    trainer.train()
    best = trainer.state.best_global_step
    assert best != 12, "the test needs a best checkpoint other than the last"
    assert not set(os.listdir(tmp_path / f"checkpoint-{best}")) & _FULL_WEIGHTS
    assert _same(_adapter(model), saved[best])
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)


def test_save_model_writes_the_adapter_that_from_pretrained_reads(tmp_path: Path) -> None:
    trainer, model = _train(tmp_path / "run")
    trainer.save_model(str(tmp_path / "saved"))
    names = set(os.listdir(tmp_path / "saved"))
    assert {"adapter_model.safetensors", "adapter_config.json"} <= names
    assert not names & _FULL_WEIGHTS
    loaded = peft.PeftModel.from_pretrained(_base(), str(tmp_path / "saved"))
    assert _same(_adapter(loaded), _adapter(model))


def test_a_checkpoint_of_the_reference_trainer_resumes(tmp_path: Path) -> None:
    reference = _lora()
    settings = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=4,
        save_steps=4,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    transformers.Trainer(
        model=reference, args=transformers.TrainingArguments(**settings), train_dataset=Tokens()
    ).train()
    resumed = _lora()
    trainer = Trainer(model=resumed, args=_args(tmp_path, max_steps=4), train_dataset=Tokens())
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    assert trainer.state.global_step == 4
    assert _same(_adapter(resumed), _adapter(reference))
