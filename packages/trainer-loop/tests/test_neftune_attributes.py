"""``trainer.neftune_noise_alpha`` and the embedding module's ``neftune_noise_alpha``,
which transformers' Trainer exposes: subclasses and callbacks read them to tell whether
NEFTune is on, and a subclass may set the Trainer's before ``train()``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer

transformers = pytest.importorskip("transformers")


def _llama() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


class _Tokens(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = torch.arange(8) + index
        return {"input_ids": ids, "labels": ids.clone()}


class _AlphaProbe(TrainerCallback):
    """Records the embedding module's ``neftune_noise_alpha`` at every step."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.seen.append(getattr(model.get_input_embeddings(), "neftune_noise_alpha", None))


def _trainer(tmp_path: Any, alpha: float | None, probe: _AlphaProbe) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        neftune_noise_alpha=alpha,
    )
    return Trainer(model=_llama(), args=args, train_dataset=_Tokens(), callbacks=[probe])


def test_the_trainer_and_the_embeddings_carry_the_alpha_while_training(tmp_path) -> None:
    probe = _AlphaProbe()
    trainer = _trainer(tmp_path, 5.0, probe)
    assert trainer.neftune_noise_alpha == 5.0
    trainer.train()
    assert probe.seen == [5.0, 5.0]
    embeddings = trainer.model.get_input_embeddings()
    assert not hasattr(embeddings, "neftune_noise_alpha")  # gone with the hook
    assert not embeddings._forward_hooks


def test_an_alpha_set_on_the_trainer_before_train_turns_neftune_on(tmp_path) -> None:
    probe = _AlphaProbe()
    trainer = _trainer(tmp_path, None, probe)
    assert trainer.neftune_noise_alpha is None
    trainer.neftune_noise_alpha = 3.0
    trainer.train()
    assert probe.seen == [3.0, 3.0]
