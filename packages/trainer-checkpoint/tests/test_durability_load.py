"""Loading a damaged checkpoint: a clear error naming the file and the earlier checkpoint,
raised before anything of it is loaded."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from trainer_checkpoint import (
    CorruptCheckpointError,
    FolderCheckpointStore,
    NotACheckpointError,
)
from trainer_core import CheckpointContent, TrainerState


def _content(seed: int) -> CheckpointContent:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return CheckpointContent(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        trainer_state=TrainerState(global_step=seed),
    )


def _truncate(path: str) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


def _garble(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"global_step": 4, "log_hist')


def _first_shard(folder: str) -> str:
    return sorted(n for n in os.listdir(folder) if n.startswith("model-0"))[0]


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", _truncate),
        ("optimizer.pt", _truncate),
        ("scheduler.pt", _truncate),
        ("rng_state.pth", _truncate),
        ("trainer_state.json", _garble),
        ("model.safetensors.index.json", _garble),
        ("model-shard", _truncate),
        ("model-shard", os.remove),  # an index naming a shard that is not there
    ],
)
def test_a_damaged_file_is_named_with_the_earlier_checkpoint_before_anything_loads(
    tmp_path, name, damage
) -> None:
    sharded = name.startswith("model-") or name.endswith("index.json")
    store = FolderCheckpointStore(fsync=False, max_shard_size=40 if sharded else "5GB")
    out = str(tmp_path)
    store.save(out, 2, _content(2))
    latest = store.save(out, 4, _content(4))
    name = _first_shard(latest) if name == "model-shard" else name
    damage(os.path.join(latest, name))
    target = _content(9)
    before = json.dumps(
        [target.optimizer.state_dict()["param_groups"], target.scheduler.state_dict()]
    )
    weights = [t.clone() for t in target.model.state_dict().values()]
    expected = CorruptCheckpointError if damage is not os.remove else NotACheckpointError
    with pytest.raises(expected) as caught:
        store.load(latest, target)
    message = str(caught.value)
    assert name in message and latest in message
    assert f"resume_from_checkpoint={os.path.join(out, 'checkpoint-2')!r}" in message
    current = target.model.state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(weights, current, strict=True))
    after = [target.optimizer.state_dict()["param_groups"], target.scheduler.state_dict()]
    assert json.dumps(after) == before
