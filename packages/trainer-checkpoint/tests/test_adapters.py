"""Adapter checkpoints (PEFT / LoRA) in the folder store, without peft installed.

``_AdapterModel`` behaves as ``peft.PeftModel`` does towards a checkpoint store: its
``save_pretrained`` writes ``adapter_config.json`` and ``adapter_model.safetensors`` with
the adapter's tensors only, and ``load_adapter(folder, adapter_name, is_trainable=...)``
puts them back in place.
"""

from __future__ import annotations

import json
import os
from collections import namedtuple
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainer_checkpoint import (
    FolderCheckpointStore,
    NotACheckpointError,
    check_checkpoint,
    get_last_checkpoint,
    load_weights,
)
from trainer_core import CheckpointContent, TrainerState

_Result = namedtuple("_Result", ["missing_keys", "unexpected_keys"])


class _AdapterModel(nn.Module):
    """A frozen base layer and a trainable low-rank adapter, saved as the adapter only."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.base = nn.Linear(64, 64)
        self.base.requires_grad_(False)
        self.lora_a = nn.Linear(64, 2, bias=False)
        self.lora_b = nn.Linear(2, 64, bias=False)
        self.peft_config = {"default": {"r": 2}}
        self.loaded: list[tuple[str, str, bool]] = []

    @property
    def active_adapters(self) -> list[str]:
        return ["default"]

    def adapter_state(self, state: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        state = state if state is not None else self.state_dict()
        return {k: v.detach().clone() for k, v in state.items() if k.startswith("lora_")}

    def save_pretrained(self, folder: str, state_dict: Any = None, **_: Any) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "adapter_config.json"), "w", encoding="utf-8") as f:
            json.dump({"peft_type": "LORA", "r": 2}, f)
        save_file(self.adapter_state(state_dict), os.path.join(folder, "adapter_model.safetensors"))

    def load_adapter(self, folder: str, adapter_name: str, is_trainable: bool = False) -> _Result:
        self.loaded.append((folder, adapter_name, is_trainable))
        stored = load_file(os.path.join(folder, "adapter_model.safetensors"))
        result = self.load_state_dict(stored, strict=False)
        missing = [k for k in result.missing_keys if k.startswith("lora_")]
        return _Result(missing, list(result.unexpected_keys))


def _trained(seed: int) -> CheckpointContent:
    model = _AdapterModel(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.lora_b(model.lora_a(torch.randn(3, 64))).sum().backward()
    optimizer.step()
    return CheckpointContent(
        model=model, optimizer=optimizer, trainer_state=TrainerState(global_step=3)
    )


def test_a_checkpoint_of_an_adapter_model_holds_the_adapter_not_the_full_weights(
    tmp_path,
) -> None:
    path = FolderCheckpointStore().save(str(tmp_path), 3, _trained(0))
    names = set(os.listdir(path))
    assert {"adapter_config.json", "adapter_model.safetensors", "optimizer.pt"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin"}
    assert os.path.getsize(os.path.join(path, "adapter_model.safetensors")) < 64 * 64 * 4
    assert get_last_checkpoint(str(tmp_path)) == path  # complete without full weights
    check_checkpoint(path)


def test_loading_an_adapter_checkpoint_restores_the_adapter_in_place(tmp_path) -> None:
    store = FolderCheckpointStore()
    saved = _trained(0)
    path = store.save(str(tmp_path), 3, saved)
    restored = _trained(1)
    params = list(restored.model.parameters())
    store.load(path, restored)
    want, got = saved.model.adapter_state(), restored.model.adapter_state()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert restored.model.loaded == [(path, "default", True)]
    assert all(a is b for a, b in zip(params, restored.model.parameters(), strict=True))
    assert restored.optimizer.state_dict()["state"]


def test_save_model_of_an_adapter_model_writes_what_save_pretrained_writes(tmp_path) -> None:
    FolderCheckpointStore().save_model(str(tmp_path), CheckpointContent(model=_AdapterModel(0)))
    assert sorted(os.listdir(tmp_path)) == ["adapter_config.json", "adapter_model.safetensors"]


def test_an_adapter_folder_refuses_a_model_without_adapters(tmp_path) -> None:
    _AdapterModel(0).save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="no adapters to load it into"):
        load_weights(str(tmp_path), nn.Linear(64, 64))


def test_an_adapter_that_does_not_fit_is_refused(tmp_path) -> None:
    _AdapterModel(0).save_pretrained(str(tmp_path))
    stored = load_file(os.path.join(tmp_path, "adapter_model.safetensors"))
    stored["lora_c.weight"] = torch.zeros(1)
    save_file(stored, os.path.join(tmp_path, "adapter_model.safetensors"))
    with pytest.raises(ValueError, match="does not fit"):
        load_weights(str(tmp_path), _AdapterModel(1))


def test_an_adapter_config_without_adapter_weights_is_not_a_checkpoint(tmp_path) -> None:
    path = FolderCheckpointStore().save(str(tmp_path), 3, _trained(0))
    os.remove(os.path.join(path, "adapter_model.safetensors"))
    with pytest.raises(NotACheckpointError, match="model weights"):
        check_checkpoint(path)


class _NamedAdapters(_AdapterModel):
    """Adapters "default" and "mine" (active), saved as PEFT does: "default" at the top,
    "mine" in a sub-folder of its name."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.peft_config = {"default": {"r": 2}, "mine": {"r": 2}}

    @property
    def active_adapters(self) -> list[str]:
        return ["mine"]

    def save_pretrained(self, folder: str, state_dict: Any = None, **_: Any) -> None:
        super().save_pretrained(folder, state_dict)
        super().save_pretrained(os.path.join(folder, "mine"), state_dict)

    def set_adapter(self, name: str) -> None:
        self.loaded.append(("set_adapter", name, True))


def test_named_adapters_load_each_into_its_own_name_then_the_active_one_is_set(tmp_path):
    content = CheckpointContent(model=_NamedAdapters(0), trainer_state=TrainerState())
    path = FolderCheckpointStore().save(str(tmp_path), 3, content)
    assert get_last_checkpoint(str(tmp_path)) == path
    model = _NamedAdapters(1)
    load_weights(path, model)
    assert model.loaded == [
        (path, "default", False),
        (os.path.join(path, "mine"), "mine", True),
        ("set_adapter", "mine", True),
    ]


class _CompositeModel(nn.Linear):
    """A model whose save_pretrained writes a sub-model that looks like an adapter
    folder, but has no adapters itself: the full weights must still be written."""

    def __init__(self) -> None:
        super().__init__(2, 2)

    def save_pretrained(self, folder: str, state_dict: Any = None, **_: Any) -> None:
        _AdapterModel(0).save_pretrained(os.path.join(folder, "speech_adapter"))


def test_a_sub_folder_that_is_no_adapter_of_the_model_does_not_replace_its_weights(
    tmp_path,
) -> None:
    content = CheckpointContent(model=_CompositeModel(), trainer_state=TrainerState())
    path = FolderCheckpointStore().save(str(tmp_path), 1, content)
    names = set(os.listdir(path))
    assert "speech_adapter" in names
    assert names & {"model.safetensors", "pytorch_model.bin"}
