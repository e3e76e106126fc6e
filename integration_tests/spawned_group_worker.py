"""The script test_spawned_process_group.py runs (not a test module): no launcher.

The script starts its processes itself with ``torch.multiprocessing.spawn`` and forms
the group with ``init_process_group(rank=..., world_size=...)``, so no launcher variable
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) is set. Each process trains the same model
for two steps and writes ``<out>/rank<N>.json``: the runtime's view of the group, the
epoch reached and the final weights.

    python spawned_group_worker.py <out> <port>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ((self.linear(x).squeeze(-1) - labels) ** 2).mean()}


def worker(rank: int, out: str, port: str) -> None:
    import torch.distributed as dist

    from trainer import Trainer, TrainingArguments

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    args = TrainingArguments(
        output_dir=out,
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=0.1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    torch.manual_seed(0)
    rows = [{"x": torch.tensor([i / 16, 1.0]), "labels": torch.tensor(i / 8)} for i in range(16)]
    trainer = Trainer(model=_Regressor(), args=args, train_dataset=rows)
    trainer.train()
    report = {
        "runtime_processes": trainer.runtime.num_processes,
        "runtime_index": trainer.runtime.process_index,
        "world_process_zero": trainer.is_world_process_zero(),
        "epoch": trainer.state.epoch,
        "weights": [p.detach().flatten().tolist() for p in trainer.model.parameters()],
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))

    from _worker_exit import leave_group_and_exit

    leave_group_and_exit()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    sys.path.insert(0, str(Path(__file__).parent))
    mp.spawn(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2)
