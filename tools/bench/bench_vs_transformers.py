"""Our Trainer against transformers' Trainer and a hand-written loop, on the same workloads.

The claim to check is that switching the import (``from trainer import Trainer``) makes
training faster, not only that our loop is close to a plain PyTorch loop. Three arms run
interleaved in one process (plain, ours, transformers, plain, ours, ...), so machine noise
hits all of them alike; the figures are medians of per-round ratios.

Workloads, each on one CPU thread, seeded alike in every arm:

- ``mlp``: the tiny MLP classifier of ``bench_train_loop.py`` (64 -> 128 -> 10, batch 32),
  no logging or saving: the per-step overhead of each loop.
- ``llama``: a causal LM built from a small ``LlamaConfig`` (hidden 64, 2 layers, 4 heads,
  vocabulary 256), sequences of 64 tokens, batch 8, logging every 10 steps, and one
  evaluation and one checkpoint at the end: a script as users run it. Its plain loop
  logs the loss (a device sync) at the same steps and saves nothing, so its ratio shows
  what evaluation and the checkpoint cost on top of the training steps.

Each arm is timed twice: the loop itself (from ``on_train_begin`` to ``on_train_end``, the
span the plain loop's timer covers) and the whole ``train()`` call (set-up included).

Run: uv run python tools/bench/bench_vs_transformers.py [--repeats 5] [--workload mlp|llama|all]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from bench_workloads import RandomClassification, TinyMLP
from torch import nn
from torch.utils.data import DataLoader, Dataset

import trainer

SEED = 42


@dataclass(frozen=True)
class Workload:
    """What a round trains: the model, its data, the batch and the Trainer's arguments."""

    name: str
    steps: int
    batch: int
    build_model: Callable[[], nn.Module]
    build_data: Callable[[int], Dataset]
    arguments: dict[str, Any]
    log_every: int | None = None


class RandomTokens(Dataset):
    """Fixed random token sequences whose labels are the inputs, as a causal LM trains."""

    def __init__(self, size: int, length: int = 64, vocab: int = 256) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (size, length), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def tiny_llama() -> nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


WORKLOADS = {
    "mlp": Workload(
        name="mlp",
        steps=2000,
        batch=32,
        build_model=TinyMLP,
        build_data=RandomClassification,
        arguments={"logging_strategy": "no", "save_strategy": "no"},
    ),
    "llama": Workload(
        name="llama",
        steps=300,
        batch=8,
        build_model=tiny_llama,
        build_data=RandomTokens,
        arguments={
            "logging_steps": 10,
            "eval_strategy": "steps",
            "eval_steps": 300,
            "save_strategy": "steps",
            "save_steps": 300,
        },
        log_every=10,
    ),
}


def plain_loop(workload: Workload, steps: int, fused: bool) -> float:
    """Seconds per step of a hand-written loop with the Trainer's default optimisation."""
    torch.manual_seed(SEED)
    model = workload.build_model()
    loader = DataLoader(
        workload.build_data(steps * workload.batch),
        batch_size=workload.batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
        collate_fn=trainer.default_data_collator,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    model.train()
    start = time.perf_counter()
    for step, batch in enumerate(loader, start=1):
        loss = model(**batch)["loss"]
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        model.zero_grad(set_to_none=True)
        if workload.log_every and step % workload.log_every == 0:
            float(loss.detach())
    return (time.perf_counter() - start) / steps


def loop_timer(base: type) -> Any:
    """A callback timing on_train_begin..on_train_end, built on either library's base."""

    class LoopTimer(base):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.elapsed = time.perf_counter() - self.start

    return LoopTimer()


def trainer_run(library: Any, workload: Workload, steps: int, optim: str) -> tuple[float, float]:
    """Seconds per step, loop and whole ``train()``, through ``library``'s Trainer."""
    torch.manual_seed(SEED)
    model = workload.build_model()
    data = workload.build_data(steps * workload.batch)
    timer = loop_timer(library.TrainerCallback)
    with tempfile.TemporaryDirectory() as output_dir:
        args = library.TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=workload.batch,
            per_device_eval_batch_size=workload.batch,
            max_steps=steps,
            report_to="none",
            disable_tqdm=True,
            seed=SEED,
            use_cpu=True,
            optim=optim,
            **_scaled(workload.arguments, steps, workload.steps),
        )
        eval_data = workload.build_data(4 * workload.batch)
        run = library.Trainer(
            model=model, args=args, train_dataset=data, eval_dataset=eval_data, callbacks=[timer]
        )
        start = time.perf_counter()
        run.train()
        whole = time.perf_counter() - start
    return timer.elapsed / steps, whole / steps


def _scaled(arguments: dict[str, Any], steps: int, full: int) -> dict[str, Any]:
    """Evaluation and saving at the last step of a shortened (warm-up) run too."""
    return {
        k: steps if k in ("eval_steps", "save_steps") and v == full else v
        for k, v in arguments.items()
    }


def bench(workload: Workload, repeats: int, optim: str) -> None:
    fused = optim == "adamw_torch_fused"
    plain_loop(workload, 20, fused)  # warm-up: allocator, lazy imports in torch and both libraries
    trainer_run(trainer, workload, 20, optim)
    trainer_run(transformers, workload, 20, optim)
    rounds = []
    for index in range(repeats):
        plain = plain_loop(workload, workload.steps, fused)
        ours = trainer_run(trainer, workload, workload.steps, optim)
        theirs = trainer_run(transformers, workload, workload.steps, optim)
        rounds.append((plain, ours, theirs))
        print(
            f"{workload.name} round {index}: plain {plain * 1e3:7.3f} ms/step | "
            f"ours loop {ours[0] * 1e3:7.3f} train() {ours[1] * 1e3:7.3f} | "
            f"transformers loop {theirs[0] * 1e3:7.3f} train() {theirs[1] * 1e3:7.3f}"
        )
    _summarise(workload.name, rounds)


def _summarise(
    name: str, rounds: list[tuple[float, tuple[float, float], tuple[float, float]]]
) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    for index, span in enumerate(("loop", "whole train()")):
        ours_vs_plain = median([ours[index] / plain for plain, ours, _ in rounds])
        theirs_vs_plain = median([theirs[index] / plain for plain, _, theirs in rounds])
        ours_vs_theirs = median([ours[index] / theirs[index] for _, ours, theirs in rounds])
        print(
            f"{name} median over {len(rounds)} rounds, {span}: ours/plain {ours_vs_plain:.3f}, "
            f"transformers/plain {theirs_vs_plain:.3f}, ours/transformers {ours_vs_theirs:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument(
        "--optim",
        choices=["adamw_torch", "adamw_torch_fused"],
        default="adamw_torch_fused",
        help="the optimizer of all three arms (transformers 5 defaults to the fused one)",
    )
    options = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    print(
        f"transformers {transformers.__version__}, torch {torch.__version__}, optim {options.optim}"
    )
    names = list(WORKLOADS) if options.workload == "all" else [options.workload]
    for name in names:
        bench(WORKLOADS[name], options.repeats, options.optim)


if __name__ == "__main__":
    main()
