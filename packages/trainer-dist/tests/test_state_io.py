"""State dicts through the runtime port on one process: full and sharded (DCP) round trips."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from trainer_dist import SingleProcessRuntime


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def _same(left: nn.Module, right: nn.Module) -> bool:
    pairs = zip(left.parameters(), right.parameters(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)


def test_full_state_round_trips_through_the_runtime() -> None:
    runtime = SingleProcessRuntime(device="cpu")
    model, optimizer = _trained()
    assert runtime.checkpoint_format == "full"
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    runtime.load_state_dict(fresh, runtime.state_dict(model))
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
    )
    state = runtime.optimizer_state_dict(model, optimizer)
    other = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    runtime.load_optimizer_state_dict(fresh, other, state)
    assert torch.equal(other.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def test_sharded_state_round_trips_without_a_process_group(tmp_path) -> None:
    runtime = SingleProcessRuntime(device="cpu")
    model, optimizer = _trained()
    runtime.save_sharded_state(str(tmp_path), model, optimizer)
    assert (tmp_path / "pytorch_model_fsdp_0").is_dir() and (tmp_path / "optimizer_0").is_dir()
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    other = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    runtime.load_sharded_state(str(tmp_path), fresh, other)
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
    )
    expected = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(other.state_dict()["state"][0]["exp_avg"], expected)


class _Adapted(nn.Module):
    """A frozen base layer under a trainable adapter, marked as PEFT's models are
    (``peft_config``): what the runtimes recognise as an adapter model."""

    peft_config: ClassVar[dict[str, str]] = {"default": "a LoRA config"}

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.base = nn.Linear(3, 4)
        self.adapter = nn.Linear(4, 1)
        self.base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base(x))


def test_an_adapter_models_sharded_state_holds_the_adapter_only(tmp_path) -> None:
    """The frozen base stays out of the folder (another copy of the base model in every
    checkpoint, as the reference's adapter_only save avoids) and is left as built when
    the adapter is loaded back, with its optimizer state."""
    from torch.distributed.checkpoint import FileSystemReader

    runtime = SingleProcessRuntime(device="cpu")
    model = _Adapted(seed=0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    runtime.save_sharded_state(str(tmp_path), model, optimizer)
    stored = FileSystemReader(str(tmp_path / "pytorch_model_fsdp_0")).read_metadata()
    assert sorted(stored.state_dict_metadata) == ["adapter.bias", "adapter.weight"]
    fresh = _Adapted(seed=1)
    frozen = {k: v.clone() for k, v in fresh.base.state_dict().items()}
    other = torch.optim.AdamW([p for p in fresh.parameters() if p.requires_grad], lr=0.1)
    runtime.load_sharded_state(str(tmp_path), fresh, other)
    assert _same(fresh.adapter, model.adapter)
    assert all(torch.equal(v, frozen[k]) for k, v in fresh.base.state_dict().items())
    expected = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(other.state_dict()["state"][0]["exp_avg"], expected)


def test_a_plain_optimizer_state_is_loaded_by_parameter_name() -> None:
    """A checkpoint written without sharding (one process, DDP) holds the optimizer's
    state keyed by position; the sharded runtimes load states keyed by parameter name,
    so position k becomes the k-th parameter of the optimizer's groups."""
    from trainer_dist._state_io import load_full_optimizer_state, named_optimizer_state

    model, optimizer = _trained()
    plain = optimizer.state_dict()
    named = named_optimizer_state(model, optimizer, plain)
    assert list(named["state"]) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert named["param_groups"][0]["params"] == list(named["state"])
    assert named_optimizer_state(model, optimizer, named) is named  # already by name

    torch.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    other = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    load_full_optimizer_state(fresh, other, plain)
    loaded = other.state_dict()["state"]
    assert all(torch.equal(loaded[k]["exp_avg"], plain["state"][k]["exp_avg"]) for k in range(4))


def test_a_plain_optimizer_state_of_other_groups_is_refused() -> None:
    from trainer_dist._state_io import named_optimizer_state

    model, optimizer = _trained()
    plain = optimizer.state_dict()
    plain["param_groups"][0]["params"] = [0, 1, 2]
    with pytest.raises(ValueError, match=r"groups of sizes \[3\].*has \[4\]"):
        named_optimizer_state(model, optimizer, plain)
