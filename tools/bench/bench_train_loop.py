"""Trainer against a hand-written PyTorch loop on the same workload, in one process.

Workload (issue: trainer-loop benchmark): a tiny MLP (64 -> 128 -> 10), batch 32, 2000
optimizer steps, AdamW, linear schedule, gradient clipping at 1.0 (the Trainer's
default, so the plain loop clips too), no logging, evaluation or saving, one thread,
the same seed and the same DataLoader pipeline for both. The two are run interleaved
(plain, trainer, plain, trainer, ...) so machine noise hits both alike; the figure is the
median of the per-pair ratios of time per step.

Run: uv run python tools/bench/bench_train_loop.py [--repeats 5] [--steps 2000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from bench_workloads import RandomClassification, TinyMLP
from torch import nn
from torch.utils.data import DataLoader

from trainer import Trainer, TrainerCallback, TrainingArguments, default_data_collator

BATCH = 32


def plain_loop(steps: int, seed: int = 42) -> float:
    torch.manual_seed(seed)
    model = TinyMLP()
    dataset = RandomClassification(steps * BATCH)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        generator=generator,
        collate_fn=default_data_collator,
    )
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}],
        lr=5e-5,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: max(0.0, (steps - s) / steps)
    )
    model.train()
    start = time.perf_counter()
    for batch in loader:
        loss = model(**batch)["loss"]
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        model.zero_grad(set_to_none=True)
    final = float(loss.detach())
    elapsed = time.perf_counter() - start
    return elapsed / steps if not math.isnan(final) else float("nan")


class LoopTimer(TrainerCallback):
    """Times the loop itself, from on_train_begin to on_train_end: the same span the
    plain loop's timer covers (set-up of model, optimizer and data excluded on both)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.elapsed = time.perf_counter() - self.start


def trainer_loop(steps: int, seed: int = 42) -> tuple[float, float]:
    """Seconds per step: of the loop (callback-timed) and of the whole ``train()`` call."""
    torch.manual_seed(seed)
    model = TinyMLP()
    dataset = RandomClassification(steps * BATCH)
    timer = LoopTimer()
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=BATCH,
            max_steps=steps,
            lr_scheduler_type="linear",
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=seed,
            use_cpu=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[timer])
        start = time.perf_counter()
        trainer.train()
        whole = time.perf_counter() - start
    return timer.elapsed / steps, whole / steps


def import_seconds(statement: str, repeats: int = 3) -> float:
    """Median wall time of a fresh interpreter running ``statement``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--skip-imports", action="store_true")
    options = parser.parse_args()
    torch.set_num_threads(1)
    plain_loop(100), trainer_loop(100)  # warm-up: allocator, lazy torch imports
    loop_ratios, whole_ratios = [], []
    for run in range(options.repeats):
        plain = plain_loop(options.steps)
        loop, whole = trainer_loop(options.steps)
        loop_ratios.append(loop / plain)
        whole_ratios.append(whole / plain)
        print(
            f"run {run}: plain {plain * 1e6:7.1f} us/step  trainer loop {loop * 1e6:7.1f} "
            f"us/step (ratio {loop / plain:.3f}); whole train() {whole * 1e6:7.1f} us/step "
            f"(ratio {whole / plain:.3f})"
        )
    print(
        f"median over {options.repeats} runs: loop ratio {statistics.median(loop_ratios):.3f}, "
        f"whole train() ratio {statistics.median(whole_ratios):.3f}"
    )
    if not options.skip_imports:
        torch_s = import_seconds("import torch")
        ours_s = import_seconds("from trainer import Trainer, TrainingArguments")
        print(
            f"import torch: {torch_s:.2f} s; from trainer import Trainer, TrainingArguments: "
            f"{ours_s:.2f} s; difference {ours_s - torch_s:+.2f} s"
        )


if __name__ == "__main__":
    main()
