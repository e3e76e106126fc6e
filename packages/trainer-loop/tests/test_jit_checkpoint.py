"""``enable_jit_checkpoint=True``: SIGTERM during training saves a checkpoint at the end
of the step and stops; a resumed run continues exactly as an uninterrupted one."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer
from trainer_loop._jit_checkpoint import JITCheckpointCallback

# The model, data and arguments of every run here, the child process's included.
SETUP = textwrap.dedent(
    """
    import torch
    from torch import nn
    from trainer_args import TrainingArguments


    class Data(torch.utils.data.Dataset):
        def __init__(self):
            generator = torch.Generator().manual_seed(0)
            self.x = torch.randn(24, 4, generator=generator)
            self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5])

        def __len__(self):
            return len(self.x)

        def __getitem__(self, index):
            return {"x": self.x[index], "labels": self.y[index]}


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.linear = nn.Linear(4, 1)
            self.dropout = nn.Dropout(0.2)  # draws from the RNG a resume must restore

        def forward(self, x, labels):
            out = self.linear(self.dropout(x)).squeeze(-1)
            return {"loss": nn.functional.mse_loss(out, labels)}


    def arguments(output_dir, **overrides):
        settings = dict(
            max_steps=12, per_device_train_batch_size=4, learning_rate=0.05,
            save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=3,
        )
        settings.update(overrides)
        return TrainingArguments(output_dir, **settings)
    """
)

CHILD = textwrap.dedent(
    """
    import json, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from setup import Data, Net, arguments
    from trainer_core import TrainerCallback
    from trainer_loop import Trainer

    output_dir, ready = sys.argv[1], Path(sys.argv[2])


    class WaitForSigterm(TrainerCallback):
        # At step 3, tell the parent and wait (training paused) until SIGTERM has come.
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step != 3:
                return
            ready.write_text("3")
            callbacks = trainer.callback_handler.callbacks
            for _ in range(3000):
                if any(getattr(callback, "requested", False) for callback in callbacks):
                    return
                time.sleep(0.01)


    trainer = Trainer(
        model=Net(), args=arguments(output_dir, enable_jit_checkpoint=True),
        train_dataset=Data(), callbacks=[WaitForSigterm()],
    )
    result = trainer.train()
    print(json.dumps({
        "global_step": result.global_step,
        "handler_restored": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    }))
    """
)


def _load_setup(folder: Path) -> Any:
    (folder / "setup.py").write_text(SETUP)
    namespace: dict[str, Any] = {}
    exec(compile(SETUP, str(folder / "setup.py"), "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path: Path) -> None:
    setup = _load_setup(tmp_path)
    (tmp_path / "child.py").write_text(CHILD)
    output_dir, ready = tmp_path / "stopped", tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "child.py"), str(output_dir), str(ready), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), child.communicate(timeout=5)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    # Not killed: train() returned, after the step in progress (4), with the old handler.
    assert child.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"global_step": 4, "handler_restored": True}
    assert [path.name for path in output_dir.iterdir()] == ["checkpoint-4"]
    assert "SIGTERM received" in err
    assert err.count("Saving a checkpoint on SIGTERM") == 1  # not again at the epoch's end

    data, net, arguments = setup["Data"], setup["Net"], setup["arguments"]
    whole = Trainer(model=net(), args=arguments(str(tmp_path / "whole")), train_dataset=data())
    whole.train()
    resumed = Trainer(model=net(), args=arguments(str(output_dir)), train_dataset=data())
    resumed.train(resume_from_checkpoint=str(output_dir / "checkpoint-4"))
    assert resumed.state.global_step == 12
    for ours, theirs in zip(resumed.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


class _Data(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": torch.full((2,), float(index)), "labels": torch.tensor(1.0)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}


class _HandlerSeen(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.handler = signal.getsignal(signal.SIGTERM)


def _trainer(tmp_path: Path, enabled: bool) -> tuple[Trainer, _HandlerSeen]:
    args = TrainingArguments(
        str(tmp_path), max_steps=2, per_device_train_batch_size=4, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, enable_jit_checkpoint=enabled,
    )  # fmt: skip
    seen = _HandlerSeen()
    return Trainer(model=_Net(), args=args, train_dataset=_Data(), callbacks=[seen]), seen


def test_the_handler_is_installed_only_while_training(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    trainer, seen = _trainer(tmp_path, enabled=True)
    jit = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, JITCheckpointCallback)]
    assert len(jit) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # building the Trainer installs nothing
    trainer.train()
    assert seen.handler == jit[0]._on_sigterm
    assert signal.getsignal(signal.SIGTERM) == before
    plain, _ = _trainer(tmp_path, enabled=False)
    assert not any(isinstance(cb, JITCheckpointCallback) for cb in plain.callback_handler.callbacks)


def test_training_outside_the_main_thread_warns_and_trains(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Python installs signal handlers from the main thread only."""
    before = signal.getsignal(signal.SIGTERM)
    trainer, seen = _trainer(tmp_path, enabled=True)
    errors: list[BaseException] = []

    def train() -> None:
        try:
            trainer.train()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    with caplog.at_level(logging.WARNING, logger="trainer_loop._jit_checkpoint"):
        thread = threading.Thread(target=train)
        thread.start()
        thread.join(timeout=60)
    assert not errors and trainer.state.global_step == 2
    assert seen.handler == before == signal.getsignal(signal.SIGTERM)
    assert "outside the main thread" in caplog.text
