"""The script ``test_distributed_dropout_resume.py`` launches: a model with dropout,
trained on 2 processes without stopping (in ``<out>/full``), then resumed from its
mid-epoch checkpoint-2, copied alone into ``<out>/resumed``.

Both runs share one launch (each costs seconds of start-up): the resumed Trainer seeds
and then restores every random generator from the checkpoint, so nothing the first run
left in the processes reaches it. Not a test module: its work runs only under
``__main__``. Each process writes both runs' final weights to ``<out>/rank<N>.json``.

    torchrun --nproc_per_node 2 dropout_resume_worker.py <out>
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import torch
from test_distributed_worker import group_facts, make_dataset, training_args, weights_of
from torch import nn


class DropoutRegressor(nn.Module):
    """Dropout draws from torch's global generator on every training forward, so a
    resumed run matches the uninterrupted one only if that generator is restored at
    exactly the point where the checkpoint captured it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor, idx: Any = None) -> dict[str, Any]:
        out = self.body(x).sum(dim=-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def train(out: str, checkpoint: str | None) -> dict[str, Any]:
    from trainer import Trainer

    # 16 samples, 2 per process: 4 steps an epoch, so checkpoint-2 is mid-epoch.
    args = training_args(out, save_strategy="steps", save_steps=2, ddp_backend="gloo")
    model = DropoutRegressor()
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset())
    trainer.train(resume_from_checkpoint=checkpoint)
    return {"weights": weights_of(trainer.runtime.state_dict(model)), **group_facts()}


def main(argv: list[str]) -> None:
    (out,) = argv
    torch.set_num_threads(1)
    result = {"full": train(os.path.join(out, "full"), None)}
    # Resume in a folder holding only the mid-epoch checkpoint.
    checkpoint = os.path.join(out, "resumed", "checkpoint-2")
    if torch.distributed.get_rank() == 0:
        shutil.copytree(os.path.join(out, "full", "checkpoint-2"), checkpoint)
    torch.distributed.barrier()  # the copy is complete before any process resumes
    result["resumed"] = train(os.path.join(out, "resumed"), checkpoint)
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    from _worker_exit import leave_group_and_exit

    leave_group_and_exit()  # skips torch.distributed's teardown, which can abort


if __name__ == "__main__":
    main(sys.argv[1:])
