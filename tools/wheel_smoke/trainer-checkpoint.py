"""trainer-checkpoint alone: a checkpoint is saved, found, loaded and rotated."""

import tempfile
from pathlib import Path

import torch

from trainer_checkpoint import FolderCheckpointStore, get_last_checkpoint
from trainer_core import CheckpointContent, TrainerState

torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
model(torch.randn(3, 4)).sum().backward()
optimizer.step()
store = FolderCheckpointStore(safe_serialization=True)
with tempfile.TemporaryDirectory() as out:
    for step in (1, 2, 3):
        path = store.save(
            out,
            step,
            CheckpointContent(
                model=model, optimizer=optimizer, trainer_state=TrainerState(global_step=step)
            ),
        )
    assert get_last_checkpoint(out) == path == store.latest(out)
    fresh = torch.nn.Linear(4, 2)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    loaded = store.load(path, CheckpointContent(model=fresh, optimizer=fresh_optimizer))
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_optimizer.state_dict()["state"], "the optimizer state was not restored"
    store.restore_rng(loaded.rng_state)
    store.rotate(out, 1)
    assert len(list(Path(out).glob("checkpoint-*"))) == 1
print("trainer-checkpoint: ok")
