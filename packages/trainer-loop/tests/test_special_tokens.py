"""Training with a tokenizer whose special tokens differ from the model's config writes
the tokenizer's ids into the saved config and generation config, as transformers 5 does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._special_tokens import align_special_tokens

_VOCAB = 32


def _tokenizer(**special: str) -> PreTrainedTokenizerFast:
    vocabulary = {f"w{i}": i for i in range(_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="w0"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="w0", **special)


def _model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=_VOCAB,
        n_positions=16,
        n_embd=8,
        n_layer=1,
        n_head=2,
        bos_token_id=30,
        eos_token_id=31,
    )
    return GPT2LMHeadModel(config)


def _rows() -> list[dict[str, torch.Tensor]]:
    ids = torch.arange(8) % _VOCAB
    return [{"input_ids": ids, "labels": ids} for _ in range(4)]


def _train(tmp_path: Path, tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=1,
        save_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    Trainer(model=_model(), args=args, train_dataset=_rows(), processing_class=tokenizer).train()
    folder = tmp_path / "checkpoint-1"
    config = json.loads((folder / "config.json").read_text())
    generation = json.loads((folder / "generation_config.json").read_text())
    return config, generation


def test_saved_configs_carry_the_tokenizers_special_tokens(tmp_path: Path) -> None:
    tokenizer = _tokenizer(pad_token="w1", eos_token="w2", bos_token="w3")
    config, generation = _train(tmp_path, tokenizer)
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (1, 3, 2)
    assert generation["pad_token_id"] == 1 and generation["bos_token_id"] == 3
    assert generation["eos_token_id"] == [2, 31]  # the model's own end token still stops


def test_a_token_the_tokenizer_lacks_keeps_the_models_id() -> None:
    model = _model()
    assert align_special_tokens(model, _tokenizer(eos_token="w31")) == {}  # eos already 31
    assert model.config.eos_token_id == 31 and model.generation_config.eos_token_id == 31
    assert model.config.pad_token_id is None  # the tokenizer names no padding token
    assert model.config.bos_token_id == 30


def test_a_config_listing_several_end_tokens_keeps_them_all() -> None:
    model = _model()
    model.config.eos_token_id = [31, 29]
    model.generation_config.eos_token_id = [31, 29]
    changed = align_special_tokens(model, _tokenizer(eos_token="w2"))
    assert changed == {"eos_token_id": 2}
    assert model.config.eos_token_id == [2, 31, 29]
    assert model.generation_config.eos_token_id == [2, 31, 29]


def test_objects_that_are_not_tokenizers_change_nothing() -> None:
    model = _model()
    assert align_special_tokens(model, object()) == {}
    assert align_special_tokens(model, None) == {}
    assert model.config.eos_token_id == 31
