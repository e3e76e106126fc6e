"""SIGKILL a training process at random moments, saves included; resuming always works.

The test starts the training below as a subprocess, kills it (``SIGKILL``: no cleanup
code runs) either at a random moment or a few milliseconds after a step ended (when the
checkpoint of that step is being written), and starts it again with
``resume_from_checkpoint=True``. After the last kill it lets the run finish and compares
the weights with those of a run that was never interrupted: they must be equal, bit for
bit. Run directly, this file is the training process.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

# Each kill costs a process start (~4 s, mostly importing torch): a few by default, more
# with TRAINER_FAULT_KILLS=50 when changing the checkpoint code.
KILLS = int(os.environ.get("TRAINER_FAULT_KILLS", "2"))
SEED = int(os.environ.get("TRAINER_FAULT_SEED", "1234"))


def _worker(output_dir: str) -> None:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from trainer import Trainer, TrainerCallback, TrainingArguments

    torch.set_num_threads(1)

    class Data(Dataset):
        def __init__(self) -> None:
            generator = torch.Generator().manual_seed(1)
            self.x = torch.randn(64, 32, generator=generator)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return {"x": self.x[index], "labels": self.x[index].sum(0, keepdim=True)}

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # ~1M parameters: a checkpoint is ~12 MB, a write long enough to be hit.
            self.net = nn.Sequential(
                nn.Linear(32, 1024), nn.ReLU(), nn.Dropout(0.2), nn.Linear(1024, 1024)
            )
            self.out = nn.Linear(1024, 1)

        def forward(self, x, labels):
            prediction = self.out(torch.relu(self.net(x)))
            return {"loss": ((prediction - labels) ** 2).mean()}

    class Announce(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            print(f"step {state.global_step}", flush=True)

    torch.manual_seed(0)
    model = Model()
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        num_train_epochs=6,
        save_steps=1,
        save_total_limit=3,
        learning_rate=1e-3,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        save_safetensors=True,
        seed=5,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Data(), callbacks=[Announce()])
    resume = trainer.checkpoint_store.latest(output_dir) is not None
    print("started", flush=True)
    trainer.train(resume_from_checkpoint=True if resume else None)
    from safetensors.torch import save_file

    save_file(model.state_dict(), os.path.join(output_dir, "final.safetensors"))
    print("done", flush=True)


def _start(output_dir: str, *, quiet: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, output_dir],
        stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for(process: subprocess.Popen, prefix: str) -> str | None:
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    return None


def _staging(output_dir: str) -> set[str]:
    if not os.path.isdir(output_dir):
        return set()
    return {name for name in os.listdir(output_dir) if name.startswith(".tmp-")}


def _final(output_dir: str):
    from safetensors.torch import load_file

    return load_file(os.path.join(output_dir, "final.safetensors"))


@pytest.mark.slow
def test_training_survives_sigkill_at_random_moments(tmp_path) -> None:
    reference_dir, killed_dir = str(tmp_path / "reference"), str(tmp_path / "killed")
    reference = _start(reference_dir, quiet=True)  # runs alongside the killed ones
    chooser = random.Random(SEED)
    survived = mid_save = 0
    for attempt in range(KILLS):
        before = _staging(killed_dir)
        process = _start(killed_dir)
        if _wait_for(process, "started") is None:  # finished before the kill
            process.stdout.close()
            process.wait(timeout=30)
            break
        if attempt % 2:  # just after a step: its checkpoint is being written
            if _wait_for(process, "step") is None:
                process.stdout.close()
                process.wait(timeout=30)
                break
            time.sleep(chooser.uniform(0.0, 0.02))
        else:
            time.sleep(chooser.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        survived += 1
        mid_save += bool(_staging(killed_dir) - before)  # a save was cut short
    final = _start(killed_dir, quiet=True)
    assert final.wait(timeout=120) == 0
    assert reference.wait(timeout=120) == 0
    print(f"\nSIGKILL survived: {survived} (at least {mid_save} during a checkpoint write)")
    assert survived >= max(KILLS // 2, 1)
    expected, got = _final(reference_dir), _final(killed_dir)
    assert expected.keys() == got.keys()
    assert all(bool((expected[k] == got[k]).all()) for k in expected)


if __name__ == "__main__":
    _worker(sys.argv[1])
