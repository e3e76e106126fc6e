"""``state.num_input_tokens_seen`` as callbacks read it between logging steps.

transformers 5 adds every micro-batch's tokens to the state as it trains on it, so a
callback's ``on_substep_end`` / ``on_step_end`` sees the running count (a token-budget
stop relies on it), whether the count is a host integer (``"all"``) or a tensor on the
device (``"non_padding"``). Logged values and the final count stay what they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer, _training_loop
from trainer_testing.models import PaddedTokenDataset, TokenEmbeddingModel

LENGTH, REAL, ROWS, BATCH = 6, 4, 16, 2
PER_ROW = {"all": LENGTH, "non_padding": REAL}


class _Reader(TrainerCallback):
    """Records the count at each event; stops training once it reaches ``budget``."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.substeps: list[int] = []
        self.steps: list[int] = []
        self.pre_optimizer: list[int] = []

    def on_substep_end(self, args, state, control, **kwargs):
        self.substeps.append(state.num_input_tokens_seen)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.pre_optimizer.append(state.num_input_tokens_seen)

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.num_input_tokens_seen)
        if self.budget is not None and state.num_input_tokens_seen >= self.budget:
            control.should_training_stop = True


def _train(tmp_path: Path, reader: _Reader, **overrides: Any) -> Trainer:
    settings: dict[str, Any] = {
        "per_device_train_batch_size": BATCH,
        "num_train_epochs": 1,
        "logging_steps": 500,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        **overrides,
    }
    args = TrainingArguments(str(tmp_path), **settings)
    trainer = Trainer(
        model=TokenEmbeddingModel(),
        args=args,
        train_dataset=PaddedTokenDataset(ROWS, LENGTH, REAL),
        callbacks=[reader],
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize("mode", ["all", "non_padding"])
def test_callbacks_see_the_count_including_the_current_micro_batch(
    mode: str, tmp_path: Path
) -> None:
    reader = _Reader()
    _train(tmp_path, reader, include_num_input_tokens_seen=mode, gradient_accumulation_steps=2)
    micro = BATCH * PER_ROW[mode]
    steps = ROWS // (2 * BATCH)
    assert reader.substeps == [micro * (2 * step + 1) for step in range(steps)]
    assert reader.pre_optimizer == reader.steps == [micro * 2 * (s + 1) for s in range(steps)]


@pytest.mark.parametrize("mode", ["all", "non_padding"])
def test_a_token_budget_callback_stops_training_at_its_step(mode: str, tmp_path: Path) -> None:
    reader = _Reader(budget=20)
    trainer = _train(tmp_path, reader, include_num_input_tokens_seen=mode)
    per_step = BATCH * PER_ROW[mode]
    stop = -(-20 // per_step)  # the first step whose running count reaches the budget
    assert reader.steps == [per_step * (step + 1) for step in range(stop)]
    assert trainer.state.global_step == stop
    assert trainer.state.num_input_tokens_seen == per_step * stop


def test_logged_and_final_counts_are_unchanged(tmp_path: Path) -> None:
    reader = _Reader()
    trainer = _train(tmp_path, reader, include_num_input_tokens_seen="non_padding", logging_steps=3)
    logged = [e["num_input_tokens_seen"] for e in trainer.state.log_history if "loss" in e]
    per_step = BATCH * REAL
    assert logged == [3 * per_step, 6 * per_step]  # steps 3 and 6 of 8
    final = trainer.state.log_history[-1]  # the run's metrics
    assert final["num_input_tokens_seen"] == trainer.state.num_input_tokens_seen
    assert trainer.state.num_input_tokens_seen == ROWS * REAL == reader.steps[-1]


def test_without_token_counting_nothing_is_counted_or_synchronised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path stays free of any host read or collective for the count."""

    def forbidden(*args: Any) -> None:
        raise AssertionError("tokens counted or synchronised with counting off")

    monkeypatch.setattr(_training_loop.TrainingLoop, "_count_tokens", forbidden)
    monkeypatch.setattr(_training_loop.TokenCounter, "total", forbidden)
    reader = _Reader()
    _train(tmp_path, reader, logging_steps=1, gradient_accumulation_steps=2)
    assert reader.steps == [0] * (ROWS // (2 * BATCH))


def test_a_token_rate_alone_reads_the_count_at_logs_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without include_num_input_tokens_seen no callback is promised the count, so the
    count is read when a log or the final metrics need it, not after each micro-batch."""
    reads: list[int] = []
    real_sync = _training_loop.TrainingLoop._sync_tokens_seen

    def counting_sync(loop: Any) -> None:
        if loop.tokens_stale:
            reads.append(loop.trainer.state.global_step)
        real_sync(loop)

    monkeypatch.setattr(_training_loop.TrainingLoop, "_sync_tokens_seen", counting_sync)
    trainer = _train(tmp_path, _Reader(), include_tokens_per_second=True, logging_steps=4)
    assert reads == [4, 8]  # the log at step 4 and the end (step 8, also a log)
    assert trainer.state.num_input_tokens_seen == ROWS * LENGTH
