"""Memory reports: the tracker's stages and nesting, and what train/evaluate/predict report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._memory_tracker import MemoryTracker

MB = 2**20


def test_a_skipped_tracker_does_nothing() -> None:
    tracker = MemoryTracker(skip=True)
    tracker.start("train")
    metrics: dict[str, float] = {}
    tracker.stop_and_update_metrics("train", metrics)
    assert metrics == {} and tracker.stage is None


def test_memory_allocated_and_freed_inside_a_stage_shows_as_a_peak() -> None:
    tracker = MemoryTracker(skip=False, cuda=False)
    tracker.start("train")
    kept = torch.ones(16 * MB // 4)  # 16 MB kept past the stage
    temporary = torch.ones(48 * MB // 4)  # 48 MB freed before the stage ends
    temporary.add_(1)
    for _ in range(200):  # give the sampling thread time to see the peak
        if tracker._sampler.peak - tracker._cpu_start >= 56 * MB:
            break
        time.sleep(0.001)
    del temporary
    metrics: dict[str, float] = {}
    tracker.stop_and_update_metrics("train", metrics)
    assert set(metrics) == {"train_mem_cpu_alloc_delta", "train_mem_cpu_peaked_delta"}
    assert metrics["train_mem_cpu_alloc_delta"] >= 12 * MB
    assert metrics["train_mem_cpu_alloc_delta"] + metrics["train_mem_cpu_peaked_delta"] >= 56 * MB
    assert metrics["train_mem_cpu_peaked_delta"] >= 0
    del kept


def test_nested_stages_count_in_the_outer_one_and_init_goes_to_the_first_report() -> None:
    tracker = MemoryTracker(skip=False, cuda=False)
    tracker.start("init")
    tracker.stop("init")
    tracker.start("train")
    tracker.start("eval")  # nested: ignored
    inner: dict[str, float] = {}
    tracker.stop_and_update_metrics("eval", inner)
    assert inner == {} and tracker.stage == "train"
    outer: dict[str, float] = {}
    tracker.stop_and_update_metrics("train", outer)
    assert {"init_mem_cpu_alloc_delta", "train_mem_cpu_alloc_delta"} <= set(outer)
    later: dict[str, float] = {}
    tracker.start("test")
    tracker.stop_and_update_metrics("test", later)
    assert "test_mem_cpu_peaked_delta" in later
    assert not any(key.startswith("init_") for key in later)


class Wide(Dataset):
    def __init__(self, size: int) -> None:
        self.x = torch.randn(size, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": torch.tensor(i % 3)}


class Expand(nn.Module):
    """4 inputs -> ``width`` scores: large outputs from a negligible model."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(4, width)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = self.linear(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


def _args(tmp_path, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        skip_memory_metrics=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        save_strategy="no",
        logging_strategy="no",
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


@pytest.mark.slow  # each measured stage runs a full garbage collection at its ends
def test_train_evaluate_and_predict_report_memory_with_init_on_the_first(tmp_path) -> None:
    args = _args(tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2)
    trainer = Trainer(model=Expand(), args=args, train_dataset=Wide(32), eval_dataset=Wide(16))
    train_metrics = trainer.train().metrics
    for key in (
        "init_mem_cpu_alloc_delta",
        "train_mem_cpu_alloc_delta",
        "train_mem_cpu_peaked_delta",
    ):
        assert key in train_metrics
    # What the process held when __init__ began (the model and data built before it).
    assert train_metrics["before_init_mem_cpu"] > 50 * MB  # torch alone is more
    # The evaluations inside train were counted in train, not reported on their own.
    during = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert during and not any("eval_mem_cpu_alloc_delta" in entry for entry in during)
    assert "train_mem_cpu_alloc_delta" in trainer.state.log_history[-1]
    eval_metrics = trainer.evaluate()
    assert (
        "eval_mem_cpu_alloc_delta" in eval_metrics
        and "init_mem_cpu_alloc_delta" not in eval_metrics
        and "before_init_mem_cpu" not in eval_metrics
    )
    assert "test_mem_cpu_peaked_delta" in trainer.predict(Wide(8)).metrics


@pytest.mark.slow  # four measured stages, each with two full garbage collections
def test_init_figures_go_to_evaluate_when_it_runs_first(tmp_path) -> None:
    trainer = Trainer(model=Expand(), args=_args(tmp_path), eval_dataset=Wide(8))
    assert "init_mem_cpu_alloc_delta" in trainer.evaluate()
    assert "init_mem_cpu_alloc_delta" not in trainer.evaluate()


def test_default_arguments_add_no_memory_metrics(tmp_path) -> None:
    trainer = Trainer(model=Expand(), args=_args(tmp_path, skip_memory_metrics=True))
    assert not any("_mem_" in key for key in trainer.predict(Wide(8)).metrics)


_PEAK_SCRIPT = """
import json, sys, tempfile
import torch
from torch import nn
from trainer_args import TrainingArguments
from trainer_loop import Trainer

torch.set_num_threads(1)
width, rows = 1000, 20_000

class Wide(torch.utils.data.Dataset):
    def __init__(self, size):
        self.x = torch.randn(size, 4, generator=torch.Generator().manual_seed(0))
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return {"x": self.x[i], "labels": torch.tensor(i % 3)}

class Expand(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, width)
    def forward(self, x, labels=None):
        logits = self.linear(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

args = TrainingArguments(output_dir=tempfile.mkdtemp(), skip_memory_metrics=False,
    report_to="none", disable_tqdm=True, use_cpu=True, per_device_eval_batch_size=500)
trainer = Trainer(model=Expand(), args=args)
dataset = Wide(rows)
trainer.predict(Wide(16))  # first-call allocations (init report, lazy imports) first
output = trainer.predict(dataset)
print(json.dumps({"size": output.predictions.nbytes, "shape": list(output.predictions.shape),
    **{k: v for k, v in output.metrics.items() if "_mem_" in k}}))
"""


def _peak_report() -> dict:
    # A fixed mmap threshold: glibc otherwise raises it after the first large free, and
    # from then on keeps freed batches in its heap, so whether RSS returns depends on
    # what the process allocated before (imports included), not on the loop.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024)}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_predict_peak_memory_stays_close_to_the_size_of_its_outputs() -> None:
    # 20,000 rows of 1,000 float32 scores: 80 MB of predictions from 40 batches. Measured
    # in a fresh interpreter: RSS in a process that ran a thousand tests depends on what
    # its allocator kept from them. The best of three runs is checked, for a machine
    # busy enough to disturb one.
    attempts = []
    for _ in range(3):
        report = _peak_report()
        assert report["shape"] == [20_000, 1000]
        needed = report["test_mem_cpu_alloc_delta"] + report["test_mem_cpu_peaked_delta"]
        attempts.append(needed / MB)
        # Joining a list of batches at the end would need twice the size: allow 25% + slack.
        if needed <= 1.25 * report["size"] + 16 * MB:
            return
    pytest.fail(f"predict needed {attempts} MB for {report['size'] / MB:.0f} MB of outputs")
