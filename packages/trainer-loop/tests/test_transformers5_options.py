"""transformers 5 training options the loop acts on, checked against transformers 5.24:
the ``cosine_warmup_with_min_lr`` and ``greedy`` schedules, non-padding token counts,
the data-loader worker options and the sequential training order."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import (
    GreedyLR,
    SeekableSequentialSampler,
    Trainer,
    build_train_sampler,
    dataloader_kwargs,
    get_scheduler,
)

LR = 0.1


def _optimizer(groups: int = 1) -> torch.optim.Optimizer:
    params = [{"params": [nn.Parameter(torch.zeros(1))], "lr": LR * (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=LR)


def _rates(scheduler: Any, steps: int, metrics: list[float] | None = None) -> list[list[float]]:
    """Every group's rate before each step; metric-driven schedules get ``metrics``."""
    rates = []
    for step in range(steps):
        rates.append([group["lr"] for group in scheduler.optimizer.param_groups])
        scheduler.optimizer.step()
        scheduler.step(metrics[step]) if metrics else scheduler.step()
    return rates


# --- schedules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"min_lr_rate": 0.1},
        {"min_lr": 0.02, "warmup_lr_rate": 0.3},
        {"min_lr_rate": 0.0, "num_cycles": 1.0},
    ],
)
@pytest.mark.parametrize(("warmup", "total"), [(3, 12), (0, 8), (1, 5)])
def test_cosine_warmup_with_min_lr_matches_transformers(
    options: dict[str, float], warmup: int, total: int
) -> None:
    reference = pytest.importorskip("transformers.optimization")
    name = "cosine_warmup_with_min_lr"
    expected = _rates(
        reference.get_scheduler(name, _optimizer(), warmup, total, options), total + 2
    )
    ours = _rates(get_scheduler(name, _optimizer(), warmup, total, options), total + 2)
    assert [rate for (rate,) in ours] == pytest.approx([rate for (rate,) in expected], rel=1e-12)


def _metrics() -> list[float]:
    """Improving for a while, then flat, then noisy: every GreedyLR rule fires."""
    generator = torch.Generator().manual_seed(0)
    noisy = torch.rand(60, generator=generator).tolist()
    return [1.0 - 0.01 * i for i in range(30)] + [1.0] * 50 + noisy


GREEDY_CASES = [
    {"patience": 2},
    {"patience": 1, "factor": 0.5, "cooldown": 2, "warmup": 1, "min_lr": 0.01, "max_lr": 0.5,
     "reset_start": 3},
    {"patience": 0, "smooth": True, "window_size": 4, "threshold": 0.01, "threshold_mode": "rel"},
    {"mode": "max", "patience": 1, "min_lr": [0.01, 0.02], "max_lr": [1.0, 2.0]},
]  # fmt: skip


@pytest.mark.parametrize("options", GREEDY_CASES)
def test_greedy_matches_transformers(options: dict[str, Any]) -> None:
    reference = pytest.importorskip("transformers.optimization")
    theirs = reference.get_scheduler("greedy", _optimizer(2), None, None, options)
    ours = get_scheduler("greedy", _optimizer(2), None, None, options)
    assert isinstance(ours, GreedyLR)
    metrics = _metrics()
    assert _rates(ours, len(metrics), metrics) == _rates(theirs, len(metrics), metrics)
    assert ours.state_dict() == theirs.state_dict()


def test_greedy_state_loads_weights_only_into_either_implementation() -> None:
    reference = pytest.importorskip("transformers.optimization")
    options = {"patience": 1, "factor": 0.5, "smooth": True, "window_size": 3}
    metrics = _metrics()
    original = get_scheduler("greedy", _optimizer(), None, None, options)
    _rates(original, 40, metrics)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    for build in (
        lambda: get_scheduler("greedy", _optimizer(), None, None, options),
        lambda: reference.GreedyLR(_optimizer(), **options),
    ):
        buffer.seek(0)
        restored = build()
        restored.load_state_dict(torch.load(buffer, weights_only=True))
        twin = pickle.loads(pickle.dumps(original))
        assert _rates(restored, 30, metrics[40:]) == _rates(twin, 30, metrics[40:])


def test_greedy_rejects_unknown_options_with_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"patiance.*accepts: .*patience"):
        get_scheduler("greedy", _optimizer(), None, None, {"patiance": 2})
    with pytest.raises(ValueError, match="factor < 1"):
        get_scheduler("greedy", _optimizer(), None, None, {"factor": 1.5})


class _Regression(Dataset):
    def __init__(self, size: int = 32) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.y[index]}


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "per_device_train_batch_size": 4,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        **overrides,
    }
    return TrainingArguments(str(tmp_path), **settings)


def test_the_trainer_steps_greedy_on_the_evaluation_loss_only(tmp_path: Path) -> None:
    """As transformers 5 does: after each evaluation, with eval_<metric_for_best_model>,
    never after an optimizer step."""
    options = {"patience": 1, "factor": 0.5, "min_lr": 1e-4, "max_lr": 0.2}
    args = _args(
        tmp_path, max_steps=24, learning_rate=0.05, lr_scheduler_type="greedy",
        lr_scheduler_kwargs=options, eval_strategy="steps", eval_steps=4, logging_steps=1,
    )  # fmt: skip
    assert args.metric_for_best_model == "loss"
    trainer = Trainer(
        model=_Linear(), args=args, train_dataset=_Regression(), eval_dataset=_Regression(8)
    )
    trainer.train()
    history = trainer.state.log_history
    losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    logged = [entry["learning_rate"] for entry in history if "learning_rate" in entry]
    replay = GreedyLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.05), **options)
    expected = []
    for step in range(1, 25):
        expected.append(replay.optimizer.param_groups[0]["lr"])
        if step % 4 == 0:
            replay.step(losses[step // 4 - 1])
    assert logged == expected
    assert len(set(logged)) > 1  # the rate did move


# --- include_num_input_tokens_seen="non_padding" ------------------------------------------


class _Tokens(Dataset):
    """Rows of 6 ids with 1 to 6 real tokens; padding has id 0 and mask 0."""

    def __init__(self, size: int = 12, with_mask: bool = True) -> None:
        self.real = [1 + (index * 5) % 6 for index in range(size)]
        self.with_mask = with_mask

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        mask = (torch.arange(6) < self.real[index]).long()
        row = {"input_ids": (torch.arange(6) + 1) * mask, "labels": torch.tensor(1.0)}
        return {**row, "attention_mask": mask} if self.with_mask else row


class _TokenModel(nn.Module):
    main_input_name = "input_ids"

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(8, 1)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: Any = None
    ) -> dict[str, torch.Tensor]:
        out = self.embedding(input_ids).mean(dim=(1, 2))
        return {"loss": nn.functional.mse_loss(out, labels)}


class _PadOnly:
    pad_token_id = 0


@pytest.mark.parametrize("with_mask", [True, False])
def test_non_padding_counts_the_real_tokens(with_mask: bool, tmp_path: Path) -> None:
    """The mask's ones, or without a mask the ids that are not the pad id; the count in a
    checkpoint saved between logs is up to date too."""
    data = _Tokens(with_mask=with_mask)
    args = _args(
        tmp_path, max_steps=3, logging_steps=2, save_strategy="steps", save_steps=3,
        include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    processing_class = None if with_mask else _PadOnly()
    trainer = Trainer(
        model=_TokenModel(), args=args, train_dataset=data, processing_class=processing_class
    )
    order = list(iter(trainer._get_train_sampler(data)))
    trainer.train()
    real = [data.real[index] for index in order]
    logs = [entry["num_input_tokens_seen"] for entry in trainer.state.log_history]
    assert logs[0] == sum(real[:8])  # step 2
    assert trainer.state.num_input_tokens_seen == sum(real) < 12 * 6
    saved = json.loads((tmp_path / "checkpoint-3" / "trainer_state.json").read_text())
    assert saved["num_input_tokens_seen"] == sum(real)


def test_all_tokens_still_counts_padding(tmp_path: Path) -> None:
    args = _args(tmp_path, max_steps=3, logging_steps=2, include_num_input_tokens_seen="all")
    trainer = Trainer(model=_TokenModel(), args=args, train_dataset=_Tokens())
    trainer.train()
    assert trainer.state.num_input_tokens_seen == 12 * 6


# --- data-loader worker options -------------------------------------------------------


def test_worker_start_method_and_order_reach_the_dataloader(tmp_path: Path) -> None:
    args = _args(
        tmp_path, dataloader_num_workers=2, dataloader_multiprocessing_context="spawn",
        dataloader_in_order=False,
    )  # fmt: skip
    loader = Trainer(model=_Linear(), args=args, train_dataset=_Regression()).get_train_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    assert loader.in_order is False
    # Without workers they are left out: torch refuses a start method then (transformers
    # passes it and fails), and one process's batches have no order to relax.
    args.dataloader_num_workers = 0
    assert "multiprocessing_context" not in dataloader_kwargs(args, training=True)
    assert "in_order" not in dataloader_kwargs(args, training=True)
    loader = Trainer(model=_Linear(), args=args, train_dataset=_Regression()).get_train_dataloader()
    assert len(list(loader)) == 8


# --- train_sampling_strategy="sequential" ---------------------------------------------


class _Recording(_Regression):
    def __init__(self) -> None:
        super().__init__(12)
        self.seen: list[int] = []

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.seen.append(int(index))
        return super().__getitem__(index)


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            control.should_training_stop = True


def _sequential_run(
    tmp_path: Path, resume: Any = None, stop_at: int | None = None, **overrides: Any
) -> tuple[Trainer, list]:
    data = _Recording()
    args = _args(
        tmp_path, num_train_epochs=2, train_sampling_strategy="sequential", logging_steps=1,
        **overrides,
    )  # fmt: skip
    callbacks = [] if stop_at is None else [_StopAt(stop_at)]
    trainer = Trainer(model=_Linear(), args=args, train_dataset=data, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, data.seen


def test_sequential_trains_in_the_dataset_order_every_epoch(tmp_path: Path) -> None:
    args = _args(tmp_path, train_sampling_strategy="sequential")
    sampler = build_train_sampler(_Regression(6), args, train_batch_size=2)
    assert isinstance(sampler, SeekableSequentialSampler)
    _, seen = _sequential_run(tmp_path)
    assert seen == list(range(12)) * 2


def test_sequential_resumes_exactly_where_it_stopped(tmp_path: Path) -> None:
    whole, _ = _sequential_run(tmp_path / "whole")
    # 3 steps of 4 rows per epoch: step 4 is the first of the second epoch.
    _sequential_run(tmp_path / "stopped", stop_at=4, save_strategy="steps", save_steps=4)
    checkpoint = str(tmp_path / "stopped" / "checkpoint-4")
    resumed, seen = _sequential_run(tmp_path / "stopped", resume=checkpoint)
    assert seen == list(range(4, 12))  # the rest of that epoch: nothing drawn twice
    for ours, theirs in zip(resumed.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)
