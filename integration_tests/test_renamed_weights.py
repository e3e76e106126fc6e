"""Models whose saved weight names differ from their module names still resume and load
their best checkpoint.

transformers 5 saves some architectures (ViT among them) under their original checkpoint
names (``vit.encoder.layer.0.attention.attention.query.weight``) while the modules are
named differently (``vit.layers.0.attention.q_proj.weight``); only the model class knows
the conversion. A Trainer that loads the files by name fails, or, loading non-strictly,
silently keeps weights it never loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from trainer import Trainer, TrainerCallback, TrainingArguments
from trainer_checkpoint import load_weights, read_weights

transformers = pytest.importorskip("transformers")


class Images(Dataset):
    def __init__(self, size: int = 16) -> None:
        generator = torch.Generator().manual_seed(0)
        self.pixels = torch.randn(size, 3, 8, 8, generator=generator)
        self.labels = torch.randint(0, 3, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


def _vit(hidden_size: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=8,
        patch_size=4,
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    return transformers.ViTForImageClassification(config)


def _args(output_dir: Path, **overrides) -> TrainingArguments:
    settings = dict(
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_steps=8,
        eval_strategy="steps",
        eval_steps=4,
        save_steps=4,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_safetensors=True,
    )
    return TrainingArguments(str(output_dir), **{**settings, **overrides})


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_saved_names_really_differ_from_the_module_names(tmp_path: Path) -> None:
    model = _vit()
    model.save_pretrained(tmp_path)
    assert set(read_weights(str(tmp_path))) != set(model.state_dict())


def test_the_best_checkpoint_loads_into_the_model(tmp_path: Path) -> None:
    model = _vit()
    args = _args(tmp_path, load_best_model_at_end=True, metric_for_best_model="loss")
    trainer = Trainer(model=model, args=args, train_dataset=Images(), eval_dataset=Images(8))
    trainer.train()
    best = trainer.state.best_model_checkpoint
    reference = transformers.ViTForImageClassification.from_pretrained(best)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    plain = {"eval_strategy": "no"}
    whole = _vit()
    Trainer(model=whole, args=_args(tmp_path / "whole", **plain), train_dataset=Images()).train()
    cut = _args(tmp_path / "cut", **plain)  # the same schedule, stopped after step 4
    Trainer(model=_vit(), args=cut, train_dataset=Images(), callbacks=[StopAt(4)]).train()
    resumed = _vit()
    Trainer(model=resumed, args=_args(tmp_path / "cut", **plain), train_dataset=Images()).train(
        resume_from_checkpoint=str(tmp_path / "cut" / "checkpoint-4")
    )
    expected = _weights(whole)
    for name, tensor in resumed.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def test_weights_of_another_size_are_still_refused(tmp_path: Path) -> None:
    _vit(hidden_size=16).save_pretrained(tmp_path)
    other = _vit(hidden_size=32)
    before = _weights(other)
    with pytest.raises(ValueError, match="could not read them either"):
        load_weights(str(tmp_path), other)
    for name, tensor in other.state_dict().items():  # nothing half-loaded
        assert torch.equal(tensor, before[name]), name
