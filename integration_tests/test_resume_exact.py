"""Stop at step k, resume, and end with the weights of the run that never stopped."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from trainer import Trainer
from trainer_checkpoint import NotACheckpointError

from ._checkpoint_helpers import CountingDataset, make_args, make_model, same_weights, weights


def _train(output_dir: str, resume=None, dataset=None, model_seed: int = 0, **overrides):
    model = make_model(model_seed)
    trainer = Trainer(
        model=model,
        args=make_args(output_dir, **overrides),
        train_dataset=dataset if dataset is not None else CountingDataset(),
    )
    trainer.train(resume_from_checkpoint=resume)
    return weights(model), trainer


# 40 examples in batches of 4: 10 batches per epoch, 3 epochs.
@pytest.mark.parametrize(
    ("accumulation", "steps"),
    [
        (1, (4, 10, 22)),  # mid-epoch, at an epoch's end, in the last epoch
        (3, (2, 4, 6)),  # windows of 3, 3, 3 and 1 batches: 4 steps per epoch
    ],
)
def test_resumed_runs_end_with_the_uninterrupted_weights(tmp_path, accumulation, steps) -> None:
    full_dir = str(tmp_path / "full")
    expected, _ = _train(full_dir, gradient_accumulation_steps=accumulation)
    for step in steps:
        checkpoint = os.path.join(full_dir, f"checkpoint-{step}")
        resumed, trainer = _train(
            str(tmp_path / f"resumed-{step}"),
            resume=checkpoint,
            model_seed=99,  # other initial weights: all must come from the checkpoint
            gradient_accumulation_steps=accumulation,
        )
        assert same_weights(resumed, expected), f"resumed from step {step}"
        assert trainer.state.global_step == (30 if accumulation == 1 else 12)  # 3 x ceil(10 / 3)


def test_resume_true_picks_the_newest_complete_checkpoint(tmp_path, caplog) -> None:
    output_dir = str(tmp_path / "run")
    expected, _ = _train(output_dir)
    for step in (30, 28, 26):  # keep checkpoints up to 24
        shutil.rmtree(os.path.join(output_dir, f"checkpoint-{step}"))
    os.makedirs(os.path.join(output_dir, ".tmp-checkpoint-26"))  # a save killed half way
    dataset = CountingDataset()
    resumed, _ = _train(output_dir, resume=True, dataset=dataset)
    assert same_weights(resumed, expected)
    assert ".tmp-checkpoint-26" in caplog.text
    assert len(dataset.reads) == 6 * 4  # steps 25..30 only: skipped batches were never read


def test_seeking_reads_no_skipped_example_and_ignore_data_skip_restarts_the_epoch(
    tmp_path,
) -> None:
    full = CountingDataset()
    _train(str(tmp_path / "run"), dataset=full)
    checkpoint = str(tmp_path / "run" / "checkpoint-14")  # 4 batches into the second epoch
    dataset = CountingDataset()
    _train(str(tmp_path / "a"), resume=checkpoint, dataset=dataset)
    assert dataset.reads == full.reads[14 * 4 :]  # the same items in the same order
    dataset = CountingDataset()
    _train(str(tmp_path / "b"), resume=checkpoint, dataset=dataset, ignore_data_skip=True)
    assert dataset.reads[:40] == full.reads[40:80]  # the second epoch again, from its start


def test_resuming_a_finished_run_trains_no_further(tmp_path) -> None:
    output_dir = str(tmp_path / "run")
    expected, _ = _train(output_dir)
    dataset = CountingDataset()
    resumed, trainer = _train(
        str(tmp_path / "again"), resume=f"{output_dir}/checkpoint-30", dataset=dataset
    )
    assert same_weights(resumed, expected) and dataset.reads == []
    assert trainer.state.global_step == 30


def test_resuming_behind_newer_checkpoints_warns_that_true_would_pick_them(
    tmp_path, caplog
) -> None:
    output_dir = str(tmp_path / "run")
    _train(output_dir, max_steps=6)
    caplog.clear()
    _train(str(tmp_path / "other"), resume=f"{output_dir}/checkpoint-2", max_steps=3)
    _train(output_dir, resume=True, max_steps=6)
    assert "newer checkpoints" not in caplog.text  # another run's folder; the newest one
    _train(output_dir, resume=f"{output_dir}/checkpoint-2", max_steps=3)
    assert "Resuming from checkpoint-2" in caplog.text
    assert "(checkpoint-4, checkpoint-6)" in caplog.text
    kept = ["checkpoint-2", "checkpoint-3", "checkpoint-4", "checkpoint-6"]  # none deleted
    assert sorted(os.listdir(output_dir)) == kept


def test_an_output_folder_given_as_the_checkpoint_is_refused_with_the_fix(tmp_path) -> None:
    output_dir = str(tmp_path / "run")
    _train(output_dir, max_steps=4)
    # Its own output folder: True is the fix; another run's: the newest checkpoint's path.
    with pytest.raises(ValueError, match=r"folder of checkpoints.*Pass True.*\(checkpoint-4\)"):
        _train(output_dir, resume=output_dir)
    newest = repr(f"{output_dir}/checkpoint-4")
    with pytest.raises(ValueError, match=re.escape(f"Pass {newest} to resume")):
        _train(str(tmp_path / "other"), resume=output_dir)
    assert sorted(os.listdir(output_dir)) == ["checkpoint-2", "checkpoint-4"]  # untouched


def test_bad_resume_arguments_raise_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        _train(str(tmp_path / "empty"), resume=True)
    with pytest.raises(FileNotFoundError, match="no such folder") as missing:
        _train(str(tmp_path / "x"), resume=str(tmp_path / "missing"))
    assert isinstance(missing.value, ValueError)  # what the reference raises there
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "readme.txt").write_text("not a checkpoint")
    with pytest.raises(NotACheckpointError, match="not a complete checkpoint"):
        _train(str(tmp_path / "x"), resume=str(tmp_path / "plain"))
    with pytest.raises(TypeError, match="resume_from_checkpoint must be"):
        _train(str(tmp_path / "x"), resume=3)


def test_a_resumed_runs_loss_and_speed_cover_only_the_steps_it_trained(tmp_path) -> None:
    """train_loss averages the steps this run trained (newer releases of the reference;
    dividing by every step since the start would halve it when resuming half-way)."""
    _, full = _train(str(tmp_path / "full"), logging_steps=1)
    _, resumed = _train(
        str(tmp_path / "resumed"), resume=str(tmp_path / "full" / "checkpoint-20"), logging_steps=1
    )
    last_ten = [e["loss"] for e in full.state.log_history if "loss" in e][20:]
    output = resumed.state.log_history[-1]
    assert output["train_loss"] == pytest.approx(sum(last_ten) / 10, abs=1e-3)
    full_output = full.state.log_history[-1]
    # 10 of 30 steps: a third of the samples in about a third of the time, not all of them.
    assert output["train_samples_per_second"] < 2 * full_output["train_samples_per_second"]
