"""Checkpoint save / resume cost, and the cost of resuming deep into an epoch.

1. Save and load of a ~100M-parameter model with its AdamW state (1.2 GB on disk):
   trainer-checkpoint's ``FolderCheckpointStore`` (safetensors weights, optimizer,
   scheduler, RNG, trainer state, staging folder, fsync, rename) against the plain
   minimum: ``safetensors.torch.save_file(model.state_dict())`` plus
   ``torch.save(optimizer.state_dict())`` (and their loads). The weights and optimizer
   files are the same in both (same bytes for the weights; the same zip records for the
   optimizer). Runs alternate (plain, ours, plain + fsync, then rotated) so machine
   noise hits all, each starting after ``os.sync()`` so that no run pays for the
   previous one's writes; the figure is the median of the per-repeat ratios.
   Target: at most 1.2x. The plain save leaves its data in the page cache (not durable:
   a power cut loses it), while ours is on stable storage before the rename that makes
   it visible (what makes it crash-safe); "plain + fsync" is the plain calls followed
   by an fsync of both files, the simplest durable version, printed for scale.
   ``--no-fsync`` measures the store without the flush.
2. Resuming at step 50,000 of a 100,000-sample epoch (batch size 1) against resuming at
   step 1 of the same epoch: ``Trainer.train(resume_from_checkpoint=...)`` then one
   more step. Target: under 1 s more. For scale, the time to draw and drop the 50,000
   skipped batches, as the reference does, is printed too.

Run: .venv/bin/python tools/bench/bench_checkpoint.py [--params 100e6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from functools import partial
from itertools import islice

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainer import Trainer, TrainingArguments
from trainer_checkpoint import FolderCheckpointStore
from trainer_core import CheckpointContent, TrainerState

WIDTH = 2048


def _model(params: float) -> nn.Module:
    layers = max(int(params // (WIDTH * WIDTH + WIDTH)), 1)
    return nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(layers)])


def _stepped_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return optimizer


def _timed(fn) -> float:
    os.sync()  # start each measurement without the previous one's dirty pages
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _plain_save(folder: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    save_file(model.state_dict(), os.path.join(folder, "model.safetensors"), {"format": "pt"})
    torch.save(optimizer.state_dict(), os.path.join(folder, "optimizer.pt"))


def _plain_save_fsync(folder: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    _plain_save(folder, model, optimizer)
    for name in ("model.safetensors", "optimizer.pt", "."):
        fd = os.open(os.path.join(folder, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _plain_load(folder: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    optimizer.load_state_dict(torch.load(os.path.join(folder, "optimizer.pt"), weights_only=True))


def bench_save_load(params: float, repeats: int, root: str, *, fsync: bool = True) -> None:
    model = _model(params)
    optimizer = _stepped_optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    count = sum(p.numel() for p in model.parameters())
    store = FolderCheckpointStore(safe_serialization=True, fsync=fsync)
    content = CheckpointContent(
        model=model, optimizer=optimizer, scheduler=scheduler, trainer_state=TrainerState()
    )
    plain_dir, synced_dir = os.path.join(root, "plain"), os.path.join(root, "synced")
    ours_dir = os.path.join(root, "ours")
    saves = {
        "plain": partial(_plain_save, plain_dir, model, optimizer),
        "ours": lambda step: store.save(ours_dir, step, content),
        "plain + fsync": partial(_plain_save_fsync, synced_dir, model, optimizer),
    }
    times: dict[str, list[float]] = {name: [] for name in saves}
    loads: list[tuple[float, float]] = []
    for repeat in range(repeats):
        order = list(saves)[repeat % 3 :] + list(saves)[: repeat % 3]  # rotate who goes first
        for name in order:
            run = saves[name]
            times[name].append(_timed(partial(run, repeat) if name == "ours" else run))
        checkpoint = os.path.join(ours_dir, f"checkpoint-{repeat}")
        load_ours = partial(store.load, checkpoint, content)
        load_plain = partial(_plain_load, plain_dir, model, optimizer)
        if repeat % 2:  # alternate who loads first: the first read after the saves is slower
            plain_load, ours_load = _timed(load_plain), _timed(load_ours)
        else:
            ours_load, plain_load = _timed(load_ours), _timed(load_plain)
        loads.append((plain_load, ours_load))
        _report_files(repeat, plain_dir, checkpoint)
        for folder in (plain_dir, synced_dir, ours_dir):
            shutil.rmtree(folder)
    print(
        f"model: {count / 1e6:.1f}M parameters, {count * 12 / 1e9:.2f} GB with AdamW state; "
        f"store fsync {'on' if fsync else 'off'}; {repeats} repeats"
    )
    _print_row("save", list(zip(times["plain"], times["ours"], strict=True)))
    _print_row(
        "save vs plain + fsync", list(zip(times["plain + fsync"], times["ours"], strict=True))
    )
    _print_row("load", loads)


def _report_files(repeat: int, plain_dir: str, checkpoint: str) -> None:
    """Once: what each side wrote (the same weights and optimizer files)."""
    if repeat:
        return
    plain = {name: os.path.getsize(os.path.join(plain_dir, name)) for name in os.listdir(plain_dir)}
    ours = {
        name: os.path.getsize(os.path.join(checkpoint, name)) for name in os.listdir(checkpoint)
    }
    print(f"plain writes {plain}")
    print(f"trainer-checkpoint writes {ours}")


def _print_row(kind: str, pairs: list[tuple[float, float]]) -> None:
    ratio = statistics.median(ours / plain for plain, ours in pairs)
    plain = statistics.median(p for p, _ in pairs)
    ours = statistics.median(o for _, o in pairs)
    print(
        f"{kind}: baseline {plain:.2f} s, trainer-checkpoint {ours:.2f} s (medians), "
        f"median ratio {ratio:.2f}x; pairs: " + ", ".join(f"{p:.2f}/{o:.2f}" for p, o in pairs)
    )


class Indices(Dataset):
    def __init__(self, size: int) -> None:
        self.x = torch.randn(size, 8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.x[index, :1]}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 1)

    def forward(self, x, labels):
        return {"loss": ((self.linear(x) - labels) ** 2).mean()}


def _resume_time(root: str, checkpoint: str, step: int, dataset: Dataset) -> float:
    args = TrainingArguments(
        output_dir=os.path.join(root, f"resume-{step}"),
        per_device_train_batch_size=1,
        max_steps=step + 1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        logging_strategy="no",
    )
    trainer = Trainer(model=Tiny(), args=args, train_dataset=dataset)
    return _timed(lambda: trainer.train(resume_from_checkpoint=checkpoint))


def _forge(source: str, target: str, step: int) -> None:
    shutil.copytree(source, target)
    path = os.path.join(target, "trainer_state.json")
    with open(path, encoding="utf-8") as handle:
        state = json.load(handle)
    state["global_step"] = step
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(state, handle)


def bench_deep_resume(root: str, samples: int = 100_000, step: int = 50_000) -> None:
    dataset = Indices(samples)
    args = TrainingArguments(
        output_dir=os.path.join(root, "first"),
        per_device_train_batch_size=1,
        max_steps=1,
        save_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    Trainer(model=Tiny(), args=args, train_dataset=dataset).train()
    early = os.path.join(root, "first", "checkpoint-1")
    deep = os.path.join(root, "first", f"checkpoint-{step}")
    _forge(early, deep, step)  # same files, a step half way through the epoch
    _resume_time(root, early, 1, dataset)  # warm-up
    at_start = min(_resume_time(root, early, 1, dataset) for _ in range(3))
    at_deep = min(_resume_time(root, deep, step, dataset) for _ in range(3))
    loader = DataLoader(dataset, batch_size=1, shuffle=True)
    iterate = _timed(lambda: sum(1 for _ in islice(iter(loader), step)))
    print(
        f"resume at step 1: {at_start:.3f} s; at step {step:,} of a {samples:,}-sample epoch: "
        f"{at_deep:.3f} s (+{at_deep - at_start:.3f} s). Iterating the {step:,} skipped "
        f"batches instead would take {iterate:.1f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=100e6)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-fsync", action="store_true", help="skip the flush to disk")
    parser.add_argument("--skip-resume", action="store_true", help="only save / load")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    options = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=options.dir) as root:
        bench_save_load(options.params, options.repeats, root, fsync=not options.no_fsync)
        if not options.skip_resume:
            bench_deep_resume(root)


if __name__ == "__main__":
    main()
