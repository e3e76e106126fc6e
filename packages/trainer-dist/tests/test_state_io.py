"""State dicts through the runtime port on one process: full and sharded (DCP) round trips."""

from __future__ import annotations

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
