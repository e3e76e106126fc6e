"""Training whose disk fills up during a save, and runs resumed from an earlier checkpoint.

The first test starts the training below as a subprocess. At step 6 the process may
write no byte more (``RLIMIT_FSIZE``: every write fails as on a full disk, in Python and
in C alike), so the checkpoint of step 6 cannot be written. ``train()`` must raise an
error naming the folder and the cause; the earlier checkpoints stay complete, nothing
half written is left, and the trainer's state does not point to the missing folder.
Once there is room again, ``resume_from_checkpoint=True`` continues from step 4 and ends
with the same weights, bit for bit, as a run that never failed. Run directly, this file
is that training process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainer import Trainer


def _scripted_trainer(output_dir: str, callbacks: list) -> Trainer:
    """Every evaluation is a new best (the loss falls with the step), so the checkpoint
    the disk refuses is the one ``load_best_model_at_end`` would point to."""
    from _checkpoint_helpers import CountingDataset, make_args, make_model  # run as a script

    class Improving(Trainer):
        def evaluate(self, *args, **kwargs):
            metrics = {"eval_loss": 1.0 / self.state.global_step}
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, metrics
            )
            return metrics

    args = make_args(
        output_dir,
        max_steps=10,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=2,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    return Improving(
        model=make_model(),
        args=args,
        train_dataset=CountingDataset(),
        eval_dataset=CountingDataset(8),
        callbacks=callbacks,
    )


def _worker(root: str) -> None:
    import resource
    import signal

    import torch

    from trainer import TrainerCallback
    from trainer_checkpoint import CheckpointSaveError, get_last_checkpoint, is_complete

    torch.set_num_threads(1)

    class DiskFullsAfterStep6(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    failing_dir, reference_dir = os.path.join(root, "failing"), os.path.join(root, "reference")
    trainer = _scripted_trainer(failing_dir, [DiskFullsAfterStep6()])
    report: dict = {}
    try:
        trainer.train()
    except CheckpointSaveError as error:
        report["error"] = [error.errno, str(error)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    names = sorted(os.listdir(failing_dir))
    report["names"] = names
    report["complete"] = [is_complete(os.path.join(failing_dir, n)) for n in names]
    report["best"] = trainer.state.best_model_checkpoint
    report["latest"] = get_last_checkpoint(failing_dir)
    resumed = _scripted_trainer(failing_dir, [])
    resumed.train(resume_from_checkpoint=True)
    reference = _scripted_trainer(reference_dir, [])
    reference.train()
    pairs = zip(
        resumed.model.state_dict().values(), reference.model.state_dict().values(), strict=True
    )
    report["same_weights"] = all(torch.equal(a, b) for a, b in pairs)
    print("REPORT " + json.dumps(report), flush=True)


@pytest.mark.slow
def test_a_full_disk_during_a_save_stops_training_cleanly_and_resume_recovers(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        check=False,  # the report says what went wrong
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    failing = tmp_path / "failing"
    code, message = report["error"]
    assert code == 27 and "File too large" in message, message  # EFBIG, as RLIMIT_FSIZE says
    assert str(failing / "checkpoint-6") in message
    assert report["names"] == ["checkpoint-2", "checkpoint-4"]  # no staging folder left
    assert all(report["complete"])
    assert report["latest"] == str(failing / "checkpoint-4")
    assert report["best"] == str(failing / "checkpoint-4")  # not the folder never written
    assert report["same_weights"]


def test_a_run_resumed_from_an_earlier_checkpoint_keeps_what_it_saves(tmp_path) -> None:
    """Rolled back to checkpoint-6 while checkpoint-12 of the abandoned run exists, with
    ``save_total_limit=2``: rotation sorted by step took the newest folders of the new
    run for the oldest and deleted each one right after writing it."""
    from ._checkpoint_helpers import CountingDataset, make_args, make_model

    out = str(tmp_path)
    args = make_args(out, save_steps=6, max_steps=12)
    Trainer(model=make_model(), args=args, train_dataset=CountingDataset()).train()
    args = make_args(out, save_steps=2, max_steps=10, save_total_limit=2)
    trainer = Trainer(model=make_model(), args=args, train_dataset=CountingDataset())
    trainer.train(resume_from_checkpoint=os.path.join(out, "checkpoint-6"))
    assert "checkpoint-10" in os.listdir(out)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _worker(sys.argv[1])
