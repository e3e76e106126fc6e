"""``args.use_cache`` becomes ``model.config.use_cache`` (off by default), as in
transformers 5: a packed batch then trains on each sequence alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from trainer_args import TrainingArguments
from trainer_loop import Trainer

transformers = pytest.importorskip("transformers")


def _tiny_llama() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        attn_implementation="sdpa",
    )
    return transformers.LlamaForCausalLM(config)


def _args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 3,
        "max_steps": 1,
        "learning_rate": 0.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    return TrainingArguments(**{**settings, **overrides})


@pytest.mark.parametrize("use_cache", [False, True])
def test_trainer_sets_the_models_use_cache_from_the_arguments(
    tmp_path: Path, use_cache: bool
) -> None:
    model = _tiny_llama()
    model.config.use_cache = not use_cache
    Trainer(model=model, args=_args(tmp_path, use_cache=use_cache))
    assert model.config.use_cache is use_cache


def test_a_packed_batch_trains_on_each_sequence_alone(tmp_path: Path) -> None:
    """DataCollatorWithFlattening packs rows into one, marking each start by its position
    ids; with a cache on, the attention mask would let later sequences see earlier ones."""
    generator = torch.Generator().manual_seed(1)
    rows = [
        {"input_ids": torch.randint(0, 32, (length,), generator=generator).tolist()}
        for length in (5, 7, 4)
    ]
    for row in rows:
        row["labels"] = list(row["input_ids"])
    model = _tiny_llama()
    trainer = Trainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=rows,
        data_collator=transformers.DataCollatorWithFlattening(),
    )
    trainer.train()
    logged = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["input_ids"]])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            total += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    assert logged == pytest.approx(total / count, abs=1e-4)
