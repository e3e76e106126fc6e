"""Trainer.predict() against a plain ``torch.no_grad()`` loop collecting the same outputs.

Workloads (issue: evaluation and prediction):

- ``mlp``: the tiny MLP of bench_train_loop (64 -> 128 -> 10) over 20,000 samples, batch
  32, with ``compute_metrics`` computing accuracy from the joined logits and labels.
- ``lm``: a small causal LM (transformers GPT-2 from a tiny config: 2 layers, width 64,
  vocabulary 512) over 512 sequences of 64 tokens, batch 16, returning the logits
  (512 x 64 x 512 float32 = 64 MiB).

The plain loop is what one writes by hand: a DataLoader with the same collator and batch
size, ``model.eval()``, ``torch.no_grad()``, per-batch outputs appended to lists, one
``torch.cat`` at the end, ``.numpy()``, and for ``mlp`` the same accuracy.

The timed span is the predict call (for the Trainer, ``trainer.predict(dataset)`` on a
Trainer built beforehand, as a script builds it once; for the plain loop, everything
from creating its DataLoader to the metric). Each measurement runs in a fresh
interpreter (one thread) after a warm-up on a few batches, so memory figures do not mix:
"growth" is the peak RSS during the first predict call (sampled every millisecond by a
thread) minus the RSS just before it. The interpreter then repeats the call
``--inner`` times in all and keeps the fastest, because on a shared machine other
processes only ever make a call slower. Plain and Trainer runs alternate; the figures
are medians over ``--repeats`` pairs.

``--overhead`` measures instead, in one interpreter, the plain loop and
``trainer.predict`` alternately and prints the median difference per batch in
microseconds of this thread's CPU time (``time.thread_time``): the loop's own cost,
steadier than a ratio of wall-clock times when other processes share the cores.

Run: OMP_NUM_THREADS=1 python tools/bench/bench_predict.py [--repeats 5] [--inner 3]
[--workload mlp lm] [--overhead]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
import torch
from bench_workloads import RandomClassification, TinyMLP
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainer import Trainer, TrainingArguments, default_data_collator

MLP_SAMPLES, MLP_BATCH = 20_000, 32
LM_SEQUENCES, LM_LENGTH, LM_VOCAB, LM_BATCH = 512, 64, 512, 16


# ------------------------------------------------------------------ workloads
class RandomTokens(Dataset):
    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, LM_VOCAB, (size, LM_LENGTH), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index]}


def tiny_lm() -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.GPT2Config(
        vocab_size=LM_VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=LM_LENGTH
    )
    return transformers.GPT2LMHeadModel(config)


def accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def workload(name: str) -> tuple[nn.Module, Dataset, int]:
    torch.manual_seed(0)
    if name == "mlp":
        return TinyMLP(), RandomClassification(MLP_SAMPLES), MLP_BATCH
    return tiny_lm(), RandomTokens(LM_SEQUENCES), LM_BATCH


# --------------------------------------------------------------------- the two ways
def plain_predict(name: str, model: nn.Module, dataset: Dataset, batch: int) -> object:
    loader = DataLoader(dataset, batch_size=batch, collate_fn=default_data_collator)
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for inputs in loader:
            if name == "mlp":
                logits.append(model(**inputs)["logits"])
                labels.append(inputs["labels"])
            else:
                logits.append(model(input_ids=inputs["input_ids"]).logits)
    predictions = torch.cat(logits).numpy()
    if name == "mlp":
        return accuracy((predictions, torch.cat(labels).numpy()))
    return predictions


def trainer_predictor(name: str, model: nn.Module, batch: int, output_dir: str):
    """A Trainer set up once (as a script does); predicting is what is timed."""
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_eval_batch_size=batch,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    metrics = accuracy if name == "mlp" else None
    trainer = Trainer(model=model, args=args, compute_metrics=metrics)

    def predict(name: str, model: nn.Module, dataset: Dataset, batch: int) -> object:
        output = trainer.predict(dataset)
        return output.metrics if name == "mlp" else output.predictions

    return predict


# ------------------------------------------------------------------ measurement
class PeakRss:
    """Highest RSS of this process while running, sampled every millisecond."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.001):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join()
        return max(self.peak, self.process.memory_info().rss) - self.start


def prepared(name: str, mode: str) -> tuple[object, nn.Module, Dataset, int]:
    """The predict function of ``mode`` on workload ``name``, warmed up on a few batches."""
    torch.set_num_threads(1)
    model, dataset, batch = workload(name)
    output_dir = tempfile.mkdtemp()
    run = plain_predict if mode == "plain" else trainer_predictor(name, model, batch, output_dir)
    small = torch.utils.data.Subset(dataset, range(batch * 4))
    run(name, model, small, batch)  # warm-up: lazy imports, allocator, kernels
    return run, model, dataset, batch


def worker(name: str, mode: str, inner: int) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    run, model, dataset, batch = prepared(name, mode)
    sampler = PeakRss()
    start = time.perf_counter()
    result = run(name, model, dataset, batch)
    seconds = [time.perf_counter() - start]
    growth = sampler.stop()
    for _ in range(inner - 1):
        start = time.perf_counter()
        run(name, model, dataset, batch)
        seconds.append(time.perf_counter() - start)
    shape = list(result.shape) if isinstance(result, np.ndarray) else result
    print(json.dumps({"seconds": min(seconds), "growth": growth, "result": str(shape)[:120]}))


def measure(name: str, mode: str, inner: int) -> dict:
    command = [sys.executable, __file__, "--worker", name, mode, "--inner", str(inner)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def overhead(name: str, repeats: int) -> None:
    """Per-batch CPU microseconds ``trainer.predict`` spends beyond the plain loop."""
    plain, model, dataset, batch = prepared(name, "plain")
    ours = trainer_predictor(name, model, batch, tempfile.mkdtemp())
    ours(name, model, torch.utils.data.Subset(dataset, range(batch * 4)), batch)
    batches = -(-len(dataset) // batch)
    plain_times, differences = [], []
    for _ in range(repeats):
        start = time.thread_time()
        plain(name, model, dataset, batch)
        middle = time.thread_time()
        ours(name, model, dataset, batch)
        plain_times.append(middle - start)
        differences.append((time.thread_time() - middle) - (middle - start))
    plain_batch = statistics.median(plain_times) / batches * 1e6
    extra = statistics.median(differences) / batches * 1e6
    ratio = plain_batch / (plain_batch + extra)
    print(
        f"{name}: plain loop {plain_batch:.1f} us CPU per batch; trainer.predict adds "
        f"{extra:.1f} us per batch (median of {repeats}; ratio {ratio:.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", type=int, default=3, help="calls per process; fastest kept")
    parser.add_argument("--workload", nargs="+", default=["mlp", "lm"], choices=["mlp", "lm"])
    parser.add_argument("--overhead", action="store_true", help="per-batch CPU overhead")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        worker(*options.worker, options.inner)
        return
    for name in options.workload:
        if options.overhead:
            overhead(name, options.repeats)
            continue
        samples = MLP_SAMPLES if name == "mlp" else LM_SEQUENCES
        speed_ratios, plain_growth, trainer_growth = [], [], []
        for run in range(options.repeats):
            plain = measure(name, "plain", options.inner)
            ours = measure(name, "trainer", options.inner)
            speed_ratios.append(plain["seconds"] / ours["seconds"])
            plain_growth.append(plain["growth"])
            trainer_growth.append(ours["growth"])
            print(
                f"{name} run {run}: plain {samples / plain['seconds']:9.0f} samples/s, "
                f"{plain['growth'] / 2**20:6.1f} MiB growth | trainer "
                f"{samples / ours['seconds']:9.0f} samples/s, {ours['growth'] / 2**20:6.1f} MiB "
                f"growth | speed ratio {speed_ratios[-1]:.3f}"
            )
        memory_ratio = statistics.median(trainer_growth) / max(statistics.median(plain_growth), 1)
        print(
            f"{name}: median speed ratio (trainer / plain samples per second) "
            f"{statistics.median(speed_ratios):.3f}; memory growth ratio {memory_ratio:.3f} "
            f"(plain {statistics.median(plain_growth) / 2**20:.1f} MiB, trainer "
            f"{statistics.median(trainer_growth) / 2**20:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
