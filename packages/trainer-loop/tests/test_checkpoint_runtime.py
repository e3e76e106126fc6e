"""Checkpoints through the runtime port, on one process.

A runtime that saves *sharded* checkpoints is a ``SingleProcessRuntime`` whose
``checkpoint_format`` says so: its ``save_sharded_state`` writes real
``torch.distributed.checkpoint`` folders (without a process group), so the loop's sharded
path runs here for real; FSDP on two processes runs it in
integration_tests/test_distributed_fsdp_checkpoint.py.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_checkpoint import FolderCheckpointStore
from trainer_core import CheckpointContent, TrainerState
from trainer_dist import SingleProcessRuntime
from trainer_loop import Trainer
from trainer_loop._saving import RuntimeModel, RuntimeOptimizer


class _Data(Dataset):
    def __init__(self, size: int = 24) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 3, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.y[index]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 8)
        self.drop = nn.Dropout(0.2)
        self.b = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.b(self.drop(torch.relu(self.a(x))))
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class _ShardedRuntime(SingleProcessRuntime):
    """One process that saves its checkpoints as shards, as FSDP and DeepSpeed do."""

    @property
    def checkpoint_format(self) -> Literal["full", "sharded"]:
        return "sharded"


class _HalfGatheringRuntime(SingleProcessRuntime):
    """A runtime that leaves this process without gathered weights (a replica's view)."""

    def state_dict(self, model: Any) -> dict[str, Any]:
        return {}


def _trainer(tmp_path: Any, name: str, runtime: Any = None, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path / name),
        per_device_train_batch_size=4,
        num_train_epochs=2,
        learning_rate=0.05,
        save_strategy="steps",
        save_steps=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=3,
    )
    options.update(overrides)
    args = TrainingArguments(**options)
    runtime = runtime if runtime is not None else SingleProcessRuntime(device="cpu")
    torch.manual_seed(0)
    return Trainer(model=_Net(), args=args, train_dataset=_Data(), runtime=runtime)


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def _same(left: list[torch.Tensor], right: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left, right, strict=True))


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[torch.Tensor]]:
    tmp_path = tmp_path_factory.mktemp("sharded")
    trainer = _trainer(tmp_path, "run", _ShardedRuntime(device="cpu"))
    trainer.train()
    return tmp_path, _weights(trainer)


def test_a_sharded_runtime_writes_its_shards_into_the_checkpoint(sharded_run) -> None:
    tmp_path, _ = sharded_run
    checkpoint = tmp_path / "run" / "checkpoint-4"  # mid-epoch: 6 steps per epoch
    names = set(os.listdir(checkpoint))
    assert {"pytorch_model_fsdp_0", "optimizer_0", "sharded_state.json", "rng_state.pth"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin", "optimizer.pt"}
    assert FolderCheckpointStore().is_sharded(str(checkpoint))


@pytest.mark.parametrize("runtime", [_ShardedRuntime, SingleProcessRuntime])
def test_a_sharded_checkpoint_resumes_exactly(sharded_run, tmp_path, runtime) -> None:
    # Also on a runtime that saves full checkpoints: the checkpoint says how to load it.
    source, uninterrupted = sharded_run
    trainer = _trainer(tmp_path, "resumed", runtime(device="cpu"))
    trainer.train(resume_from_checkpoint=str(source / "run" / "checkpoint-4"))
    assert _same(_weights(trainer), uninterrupted)


def test_a_full_checkpoint_resumes_exactly_on_a_sharded_runtime(sharded_run, tmp_path) -> None:
    _, uninterrupted = sharded_run
    _trainer(tmp_path, "full").train()
    trainer = _trainer(tmp_path, "resumed", _ShardedRuntime(device="cpu"))
    trainer.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert _same(_weights(trainer), uninterrupted)


def test_load_best_model_at_end_from_a_sharded_checkpoint(tmp_path) -> None:
    trainer = _trainer(
        tmp_path,
        "best",
        _ShardedRuntime(device="cpu"),
        eval_strategy="steps",
        eval_steps=4,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
    )
    trainer.eval_dataset = _Data(8)
    trainer.train()
    best = trainer.state.best_model_checkpoint
    reference = _Net()
    SingleProcessRuntime(device="cpu").load_sharded_state(best, reference)
    assert _same(_weights(trainer), [p.detach() for p in reference.parameters()])


def test_save_only_model_writes_shards_without_optimizer_nor_rng(tmp_path) -> None:
    _trainer(tmp_path, "only", _ShardedRuntime(device="cpu"), save_only_model=True).train()
    names = set(os.listdir(tmp_path / "only" / "checkpoint-4"))
    assert "pytorch_model_fsdp_0" in names
    assert not names & {"optimizer_0", "rng_state.pth", "scheduler.pt"}


def test_a_store_without_the_shard_hook_is_refused_clearly(tmp_path) -> None:
    class PortOnlyStore(FolderCheckpointStore):
        def save(self, output_dir, step, content, *, process_index=0, is_writer=True, barrier=None):  # type: ignore[override]  # an older store, without the shard hook, on purpose
            return super().save(output_dir, step, content, barrier=barrier)

    trainer = _trainer(tmp_path, "port", _ShardedRuntime(device="cpu"))
    trainer._checkpoints.store = PortOnlyStore()
    with pytest.raises(TypeError, match="cannot: its save\\(\\) takes no sharded_writer"):
        trainer.train()


def test_a_writer_without_gathered_weights_refuses_to_write_empty_ones(tmp_path) -> None:
    trainer = _trainer(tmp_path, "empty", _HalfGatheringRuntime(device="cpu"))
    with pytest.raises(RuntimeError, match="gave process 0 no weights"):
        trainer.save_model()
    assert not (tmp_path / "empty" / "model.safetensors").exists()


def test_the_runtime_model_fills_in_tied_names_left_out_of_a_checkpoint() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    source, target = Tied(), Tied()
    stored = {"embed.weight": source.embed.weight.detach().clone()}  # written once
    view = RuntimeModel(SingleProcessRuntime(device="cpu"), target)
    assert view.load_state_dict(stored).missing_keys == []
    assert torch.equal(target.head.weight, source.embed.weight)


def test_the_runtime_optimizer_round_trips_through_a_store(tmp_path) -> None:
    runtime = SingleProcessRuntime(device="cpu")
    model = nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(3, 2)).sum().backward()
    optimizer.step()
    saved = RuntimeOptimizer(
        runtime, model, optimizer, runtime.optimizer_state_dict(model, optimizer)
    )
    store = FolderCheckpointStore()
    content = CheckpointContent(model=model, optimizer=saved, trainer_state=TrainerState())
    path = store.save(str(tmp_path), 1, content)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    store.load(path, CheckpointContent(optimizer=RuntimeOptimizer(runtime, model, fresh)))
    expected = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], expected)
