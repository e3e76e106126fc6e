"""What the Trainer's Hub methods ask of the Hub integration (the ``trainer.hub`` plugin).

The loop reaches the integration only through the entry point, so these tests stand a
small in-memory integration in for it (the real one, with the real client against a
local Hub server, is exercised in integration_tests/test_push_to_hub.py).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer, _hub


class _Pairs(Dataset):
    def __init__(self, size: int = 8) -> None:
        self.x = torch.randn(size, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.x[index].sum(dim=0, keepdim=True)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.model_tags = ["tagged-by-model"]

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class _MemoryHub(TrainerCallback):
    """An integration that records what the loop asks of it."""

    created: ClassVar[list[_MemoryHub]] = []
    cards: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, args: Any, *, token: str | None = None, private: bool | None = None):
        self.repo_id = f"someone/{os.path.basename(args.output_dir)}"
        self.token, self.private = token, private
        self.pushes: list[dict[str, Any]] = []
        self.saves: list[int] = []
        self.waited = 0
        _MemoryHub.created.append(self)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.saves.append(state.global_step)

    def push(self, output_dir: str, **options: Any) -> str:
        self.pushes.append({"files": sorted(os.listdir(output_dir)), **options})
        return f"commit-{len(self.pushes)}"

    def wait_until_done(self) -> None:
        self.waited += 1

    @staticmethod
    def write_model_card(trainer: Any, **card_args: Any) -> str:
        _MemoryHub.cards.append(card_args)
        path = os.path.join(trainer.args.output_dir, "README.md")
        with open(path, "w", encoding="utf-8") as file:
            file.write("card")
        return path


@pytest.fixture(autouse=True)
def memory_hub(monkeypatch):
    _MemoryHub.created, _MemoryHub.cards = [], []
    monkeypatch.setattr(_hub, "_hub_integration", lambda: _MemoryHub)


def _trainer(tmp_path: Any, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=4,
        max_steps=4,
        save_steps=2,
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        push_to_hub=True,
        hub_token="hf_token",
    )
    options.update(overrides)
    return Trainer(model=_Net(), args=TrainingArguments(**options), train_dataset=_Pairs())


def test_push_to_hub_argument_creates_the_repo_and_the_callback_sees_saves(tmp_path):
    trainer = _trainer(tmp_path)
    [hub] = _MemoryHub.created
    assert trainer.hub_model_id == "someone/run"
    assert hub in trainer.callback_handler.callbacks
    trainer.train()
    assert hub.saves == [2, 4]
    assert hub.pushes == []  # checkpoints are the callback's business, not push_to_hub's


def test_push_to_hub_saves_writes_the_card_and_uploads_output_dir(tmp_path):
    trainer = _trainer(tmp_path, hub_revision="dev")
    result = trainer.push_to_hub(commit_message="Done", blocking=False, language="en")
    [hub] = _MemoryHub.created
    assert result == "commit-1"
    [push] = hub.pushes
    assert "README.md" in push["files"]  # the card was written before the upload
    assert {"model.safetensors", "pytorch_model.bin"} & set(push["files"])  # and the model
    assert push["commit_message"] == "Done" and push["blocking"] is False
    assert push["token"] == "hf_token" and push["revision"] == "dev"
    [card] = _MemoryHub.cards
    assert card["model_name"] == "run" and card["language"] == "en"
    assert card["tags"] == ["tagged-by-model"]


def test_user_save_model_pushes_but_checkpoints_do_not_call_push(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.save_model()
    [hub] = _MemoryHub.created
    assert [push["commit_message"] for push in hub.pushes] == ["Model save"]


def test_push_to_hub_without_the_argument_creates_the_repo_first(tmp_path):
    trainer = _trainer(tmp_path, push_to_hub=False)
    assert _MemoryHub.created == []
    trainer.push_to_hub(token="hf_other", private=True)
    [hub] = _MemoryHub.created
    assert (hub.token, hub.private) == ("hf_other", True)
    assert hub.pushes[0]["token"] == "hf_other"


def test_init_git_repo_warns_and_creates_the_repo(tmp_path):
    trainer = _trainer(tmp_path, push_to_hub=False)
    with pytest.warns(FutureWarning, match="init_hf_repo"):
        trainer.init_git_repo(at_init=True)
    assert trainer.hub_model_id == "someone/run"
    trainer._finish_current_push()
    assert _MemoryHub.created[0].waited == 1


def test_other_processes_create_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "is_world_process_zero", lambda self: False)
    trainer = _trainer(tmp_path)
    assert _MemoryHub.created == [] and trainer.hub_model_id is None
    trainer.create_model_card()
    assert _MemoryHub.cards == []
