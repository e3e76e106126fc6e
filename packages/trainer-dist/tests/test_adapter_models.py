"""Recognising adapter models (PEFT's mark, ``peft_config``) and loading their
checkpoints, which may lack the frozen base parameters and nothing else."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from trainer_dist._adapter_models import load_module_state, trains_adapters


class _Adapted(nn.Module):
    peft_config: ClassVar[dict[str, str]] = {"default": "a LoRA config"}

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(2, 2)
        self.adapter = nn.Linear(2, 1)
        self.base.requires_grad_(False)


def test_only_a_marked_model_with_frozen_parameters_trains_adapters() -> None:
    assert trains_adapters(_Adapted())
    assert not trains_adapters(nn.Linear(2, 1))
    everything_trains = _Adapted().requires_grad_(True)
    assert not trains_adapters(everything_trains)


def test_an_adapter_state_loads_and_any_other_gap_is_refused() -> None:
    model = _Adapted()
    adapter = {"adapter.weight": torch.ones(1, 2), "adapter.bias": torch.zeros(1)}
    load_module_state(model, adapter, strict=False)
    assert torch.equal(model.adapter.weight, torch.ones(1, 2))
    with pytest.raises(RuntimeError, match=r"missing \['adapter.bias'\]"):
        load_module_state(model, {"adapter.weight": torch.ones(1, 2)}, strict=False)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_module_state(model, adapter, strict=True)
