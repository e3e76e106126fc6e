"""The script test_early_process_group.py launches with ``torchrun`` (not a test module).

A training script's preamble, before any ``Trainer`` exists, as the reference's example
scripts write it. Scenario ``first``: ``with args.main_process_first(): ...`` (the
dataset preprocessing block); rank 0 stays inside for a while, and each process records
when it entered and left. Scenario ``device``: the script reads ``args.device`` (the
examples log it) and then calls ``torch.distributed.barrier()`` itself. Both then build
a Trainer, which must keep the group that formed. Each process writes
``<out>/rank<N>.json``.

    torchrun --nproc_per_node 2 early_group_worker.py first <out>
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

HOLD_S = 1.5


def main() -> None:
    import torch.distributed as dist

    from trainer import Trainer, TrainingArguments

    scenario, out = sys.argv[1], sys.argv[2]
    args = TrainingArguments(output_dir=out, use_cpu=True, report_to="none", ddp_timeout=60)
    report: dict = {"group_after_arguments": dist.is_initialized()}
    if scenario == "first":
        with args.main_process_first(desc="dataset map"):
            report["entered"] = time.time()
            if args.process_index == 0:
                time.sleep(HOLD_S)
            report["left"] = time.time()
    else:
        report["device"] = str(args.device)
        dist.barrier()
    report["world"] = dist.get_world_size()
    report["backend"] = dist.get_backend()
    trainer = Trainer(model=nn.Linear(2, 1), args=args)
    report["runtime_processes"] = trainer.runtime.num_processes
    Path(out, f"rank{dist.get_rank()}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    from _worker_exit import leave_group_and_exit

    torch.set_num_threads(1)
    main()
    leave_group_and_exit()
