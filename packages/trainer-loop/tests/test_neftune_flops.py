"""NEFTune noise and FLOPs counting, compared with transformers' Trainer on a tiny Llama.

Also ``trainer.neftune_noise_alpha`` and the embedding module's ``neftune_noise_alpha``,
which transformers' Trainer exposes: subclasses and callbacks read them to tell whether
NEFTune is on, and a subclass may set the Trainer's before ``train()``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer
from trainer_loop._flops import estimate_flops
from trainer_loop._neftune import embedding_noise, noise_bound

transformers = pytest.importorskip("transformers")


def _llama() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


class _Tokens(Dataset):
    def __init__(self, size: int = 16) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (size, 8), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def _options(tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        learning_rate=0.1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    options.update(overrides)
    return options


def _run(trainer_cls: Any, args_cls: Any, tmp_path: Any, **overrides: Any) -> Any:
    trainer = trainer_cls(
        model=_llama(), args=args_cls(**_options(tmp_path, **overrides)), train_dataset=_Tokens()
    )
    trainer.train()
    return trainer


def _losses(trainer: Any) -> list[float]:
    # Rounded as we log them (transformers 5 stopped rounding).
    return [round(entry["loss"], 4) for entry in trainer.state.log_history if "loss" in entry]


# ------------------------------------------------------------------------ NEFTune
class _EmbeddingProbe(TrainerCallback):
    """Records, at every step, how far the embedding output is from the plain lookup."""

    def __init__(self) -> None:
        self.gaps: list[float] = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        embeddings = model.get_input_embeddings()
        ids = torch.arange(8).reshape(1, 8)
        with torch.no_grad():
            self.gaps.append(float((embeddings(ids) - embeddings.weight[ids]).abs().max()))


def test_neftune_noises_training_forwards_only_within_its_bound(tmp_path) -> None:
    probe = _EmbeddingProbe()
    trainer = Trainer(
        model=_llama(),
        args=TrainingArguments(**_options(tmp_path, neftune_noise_alpha=5.0)),
        train_dataset=_Tokens(),
        callbacks=[probe],
    )
    trainer.train()
    bound = noise_bound(5.0, 8, 32)
    assert len(probe.gaps) == 3
    assert all(0 < gap <= bound for gap in probe.gaps)
    embeddings = trainer.model.get_input_embeddings()
    assert not embeddings._forward_hooks  # removed when train() ended
    ids = torch.arange(8).reshape(1, 8)
    assert torch.equal(embeddings(ids), embeddings.weight[ids])


def test_neftune_adds_no_noise_in_evaluation_mode() -> None:
    model = _llama()
    ids = torch.arange(8).reshape(1, 8)
    with embedding_noise(model, 5.0):
        model.eval()
        plain = model.get_input_embeddings()(ids)
        model.train()
        noisy = model.get_input_embeddings()(ids)
    assert torch.equal(plain, model.get_input_embeddings().weight[ids])
    assert not torch.equal(noisy, plain)


def test_neftune_trains_as_the_reference_does(tmp_path) -> None:
    ours = _run(Trainer, TrainingArguments, tmp_path / "ours", neftune_noise_alpha=50.0)
    reference = _run(
        transformers.Trainer,
        transformers.TrainingArguments,
        tmp_path / "reference",
        neftune_noise_alpha=50.0,
    )
    plain = _run(Trainer, TrainingArguments, tmp_path / "plain")
    assert _losses(ours) == _losses(reference)
    assert _losses(ours) != _losses(plain)


class _NoEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 1)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        return {"loss": self.linear(input_ids.float()).mean()}


def test_neftune_without_input_embeddings_is_refused_at_train_start(tmp_path) -> None:
    trainer = Trainer(
        model=_NoEmbeddings(),
        args=TrainingArguments(**_options(tmp_path, neftune_noise_alpha=5.0)),
        train_dataset=_Tokens(),
    )
    with pytest.raises(ValueError, match="_NoEmbeddings has no input embedding module"):
        trainer.train()


# -------------------------------------------------------------------------- FLOPs
def test_total_flos_equals_the_references_for_a_transformers_5_model(tmp_path) -> None:
    ours = _run(Trainer, TrainingArguments, tmp_path / "ours", gradient_accumulation_steps=2)
    reference = _run(
        transformers.Trainer,
        transformers.TrainingArguments,
        tmp_path / "reference",
        gradient_accumulation_steps=2,
    )
    assert ours.state.total_flos > 0
    assert ours.state.total_flos == reference.state.total_flos
    batch = {"input_ids": torch.ones(2, 8, dtype=torch.long)}
    assert ours.floating_point_ops(batch) == reference.floating_point_ops(batch)


def test_a_zero3_partitioned_model_counts_its_full_parameters() -> None:
    """Under ZeRO-3 each process holds empty local tensors with the full size in
    ``ds_numel``; the estimate must use that size, not report 0 FLOPs."""
    model = _llama()
    batch = {"input_ids": torch.ones(2, 8, dtype=torch.long)}
    whole = estimate_flops(model, batch)
    partitioned = _llama()
    for parameter in partitioned.parameters():
        parameter.ds_numel = parameter.numel()
        parameter.data = torch.empty(0)
    assert partitioned.num_parameters(exclude_embeddings=True) == 0
    assert whole == 6 * 16 * 20_640  # 2 layers of 9,280, the final norm and the LM head
    assert estimate_flops(partitioned, batch) == whole


def test_a_model_that_cannot_tell_counts_no_flops(tmp_path) -> None:
    trainer = Trainer(
        model=_NoEmbeddings(),
        args=TrainingArguments(**_options(tmp_path, max_steps=1)),
        train_dataset=_Tokens(),
    )
    assert trainer.floating_point_ops({"input_ids": torch.ones(2, 8)}) == 0
    assert trainer.train().metrics["total_flos"] == 0


class _AlphaProbe(TrainerCallback):
    """Records the embedding module's ``neftune_noise_alpha`` at every step."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.seen.append(getattr(model.get_input_embeddings(), "neftune_noise_alpha", None))


def _probed(tmp_path: Any, alpha: float | None) -> tuple[Trainer, _AlphaProbe]:
    probe = _AlphaProbe()
    args = TrainingArguments(**_options(tmp_path, max_steps=2, neftune_noise_alpha=alpha))
    trainer = Trainer(model=_llama(), args=args, train_dataset=_Tokens(), callbacks=[probe])
    return trainer, probe


def test_the_trainer_and_the_embeddings_carry_the_alpha_while_training(tmp_path) -> None:
    trainer, probe = _probed(tmp_path, 5.0)
    assert trainer.neftune_noise_alpha == 5.0
    trainer.train()
    assert probe.seen == [5.0, 5.0]
    embeddings = trainer.model.get_input_embeddings()
    assert not hasattr(embeddings, "neftune_noise_alpha")  # gone with the hook
    assert not embeddings._forward_hooks


def test_an_alpha_set_on_the_trainer_before_train_turns_neftune_on(tmp_path) -> None:
    trainer, probe = _probed(tmp_path, None)
    assert trainer.neftune_noise_alpha is None
    trainer.neftune_noise_alpha = 3.0
    trainer.train()
    assert probe.seen == [3.0, 3.0]
