"""The config.json written beside weights kept elsewhere (DeepSpeed ZeRO-3 without a
16-bit gather) records what the model's own ``save_pretrained`` would: the class to build
and the weights' dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from trainer_loop._saving import write_model_config  # noqa: E402


def _llama() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.mark.parametrize(
    ("dtype", "name"), [(torch.float32, "float32"), (torch.bfloat16, "bfloat16")]
)
def test_the_config_names_the_class_and_dtype(
    tmp_path: Path, dtype: torch.dtype, name: str
) -> None:
    model = _llama().to(dtype)
    model.config.architectures = None  # as for a model built from a config
    write_model_config(model, str(tmp_path))
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["architectures"] == ["LlamaForCausalLM"]
    assert written["dtype"] == name
    reloaded = transformers.AutoConfig.from_pretrained(tmp_path)
    assert reloaded.architectures == ["LlamaForCausalLM"]


def test_a_module_without_a_config_writes_nothing(tmp_path: Path) -> None:
    write_model_config(torch.nn.Linear(2, 2), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
