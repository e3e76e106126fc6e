"""Swapping layers as a third party does: plugins and ports written from the public docs.

The implementations live in ``third_party/`` (a reporter and a search backend found
through entry points, a checkpoint store and a runtime passed to the Trainer); the
``*.dist-info`` there is what ``pip install`` would leave, so putting that folder on
``sys.path`` shows its entry points exactly as an installed distribution's. Each one also
runs trainer-testing's contract suite for its port, as do the built-in implementations,
and the suites are shown to reject the minimal implementations the loop then fails with.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import Trainer, TrainingArguments
from trainer_checkpoint import FolderCheckpointStore
from trainer_core import PluginLoadError, TrainerCallback
from trainer_dist import SingleProcessRuntime
from trainer_testing.checkpoint_contract import (
    CHECKPOINT_STORE_CHECKS,
    check_load_restores_what_save_captured,
    check_save_names_an_existing_checkpoint_folder,
)
from trainer_testing.models import RegressionDataset, RegressionModel
from trainer_testing.reporter_contract import check_reporter_contract
from trainer_testing.runtime_contract import (
    RUNTIME_CHECKS,
    check_prepared_dataloader_keeps_what_the_loop_reads,
)
from trainer_testing.search import check_search_backend_contract

THIRD_PARTY = Path(__file__).parent / "third_party"


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The third-party distribution, installed for this test only."""
    monkeypatch.syspath_prepend(str(THIRD_PARTY))
    import third_party_plugins.counting_runtime
    import third_party_plugins.jsonl_reporter
    import third_party_plugins.memory_store
    import third_party_plugins.random_search  # the submodules are the fixture's attributes

    yield third_party_plugins


def _args(output_dir: Path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "logging_steps": 2,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 7,
    }
    return TrainingArguments(str(output_dir), **{**settings, **overrides})


def test_a_reporter_registered_by_another_package_logs_a_run(
    installed: Any, tmp_path: Path
) -> None:
    from third_party_plugins.jsonl_reporter import JsonLinesReporter

    check_reporter_contract(JsonLinesReporter, _args(tmp_path / "contract"))
    trainer = Trainer(
        model=RegressionModel(),
        args=_args(tmp_path / "run", report_to="jsonl"),
        train_dataset=RegressionDataset(),
    )
    assert any(isinstance(cb, JsonLinesReporter) for cb in trainer.callback_handler.callbacks)
    trainer.train()
    lines = (tmp_path / "run" / "logs.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["step"] for record in records if "loss" in record] == [2, 4]
    assert "train_loss" in records[-1]


def test_a_search_backend_registered_by_another_package_runs_by_name(
    installed: Any, tmp_path: Path
) -> None:
    from third_party_plugins.random_search import RandomSearch

    check_search_backend_contract(RandomSearch(), registered=True)
    trainer = Trainer(
        model_init=lambda: RegressionModel(),  # noqa: PLW0108  # its argument is no trial
        args=_args(tmp_path, eval_strategy="no"),
        train_dataset=RegressionDataset(),
        eval_dataset=RegressionDataset(16, seed=1),
    )
    best = trainer.hyperparameter_search(
        backend="random",
        n_trials=3,
        hp_space=lambda trial: {"learning_rate": [1e-3, 1e-1]},
    )
    assert trainer.args.learning_rate == 5e-5  # the trials' values were put back
    assert best.hyperparameters["learning_rate"] in (1e-3, 1e-1)
    # The objective of the best trial is the evaluation loss of a model trained with it.
    trainer.args.learning_rate = best.hyperparameters["learning_rate"]
    trainer.args.seed = 7
    trainer.train()
    assert trainer.evaluate()["eval_loss"] == pytest.approx(best.objective)


def _store_factories(installed: Any) -> dict[str, Any]:
    return {
        "folder": FolderCheckpointStore,
        "memory": installed.memory_store.MemoryCheckpointStore,
    }


@pytest.mark.parametrize("store", ["folder", "memory"])
@pytest.mark.parametrize("check", CHECKPOINT_STORE_CHECKS, ids=lambda check: check.__name__)
def test_checkpoint_stores_meet_the_contract(
    installed: Any, store: str, check: Any, tmp_path: Path
) -> None:
    check(_store_factories(installed)[store](), str(tmp_path))


@pytest.mark.parametrize("runtime", ["single", "counting"])
@pytest.mark.parametrize("check", RUNTIME_CHECKS, ids=lambda check: check.__name__)
def test_runtimes_meet_the_contract(installed: Any, runtime: str, check: Any) -> None:
    from third_party_plugins.counting_runtime import CountingRuntime

    made = (
        SingleProcessRuntime() if runtime == "single" else CountingRuntime(SingleProcessRuntime())
    )
    check(made)


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            control.should_training_stop = True


def _swapped_trainer(output_dir: Path, store: Any) -> Trainer:
    from third_party_plugins.counting_runtime import CountingRuntime

    args = _args(
        output_dir,
        max_steps=6,
        logging_steps=1,
        save_strategy="steps",
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        greater_is_better=True,  # the worst loss wins: the best checkpoint is not the last
    )
    torch.manual_seed(0)
    return Trainer(
        model=RegressionModel(dropout=0.1),
        args=args,
        train_dataset=RegressionDataset(),
        eval_dataset=RegressionDataset(16, seed=1),
        runtime=CountingRuntime(SingleProcessRuntime()),
        checkpoint_store=store,
    )


def test_a_swapped_store_and_runtime_resume_exactly_and_keep_the_best(
    installed: Any, tmp_path: Path
) -> None:
    from third_party_plugins.memory_store import MemoryCheckpointStore

    whole = _swapped_trainer(tmp_path / "whole", MemoryCheckpointStore())
    whole.train()
    assert whole.runtime.calls["optimizer_step"] == 6
    assert whole.runtime.calls["prepare_training"] == 1

    store = MemoryCheckpointStore()
    stopped = _swapped_trainer(tmp_path / "parts", store)
    stopped.add_callback(_StopAt(4))
    stopped.train()
    resumed = _swapped_trainer(tmp_path / "parts", store)
    resumed.train(resume_from_checkpoint=True)

    best = whole.state.best_model_checkpoint
    assert best is not None and not best.endswith("checkpoint-6")
    assert os.path.basename(resumed.state.best_model_checkpoint) == os.path.basename(best)
    for mine, theirs in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def _store_keeping_references(installed: Any) -> Any:
    """A store "snapshotting" by reference: what the loop trains on goes on changing."""
    store = installed.memory_store.MemoryCheckpointStore()
    store._weights = lambda content: content.model.state_dict()  # no copy
    return store


def test_the_checkpoint_suite_rejects_what_the_loop_cannot_resume_from(
    installed: Any, tmp_path: Path
) -> None:
    store = installed.memory_store.MemoryCheckpointStore()
    original_save = store.save

    def save_without_folder(output_dir: str, step: int, content: Any, **kwargs: Any) -> str:
        path = original_save(output_dir, step, content, **kwargs)
        shutil.rmtree(path)  # names a folder that is not on disk
        return path

    store.save = save_without_folder
    with pytest.raises(AssertionError, match="not a folder on disk"):
        check_save_names_an_existing_checkpoint_folder(store, str(tmp_path / "a"))
    with pytest.raises(AssertionError, match="is not the saved one"):
        check_load_restores_what_save_captured(
            _store_keeping_references(installed), str(tmp_path / "b")
        )


def test_the_runtime_suite_rejects_a_dataloader_the_loop_cannot_plan(installed: Any) -> None:
    from third_party_plugins.counting_runtime import CountingRuntime

    class Streaming(CountingRuntime):
        def prepare_dataloader(self, dataloader: Any) -> Any:
            return (batch for batch in dataloader)  # batches only: no len(), no dataset

    with pytest.raises(AssertionError, match="no len"):
        check_prepared_dataloader_keeps_what_the_loop_reads(Streaming(SingleProcessRuntime()))


def test_two_packages_registering_one_reporter_name_fail_at_construction(
    installed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "site"
    dist_info = other / "other_jsonl-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-jsonl\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[trainer.report_to]\njsonl = other_jsonl:Reporter\n"
    )
    monkeypatch.syspath_prepend(str(other))
    with pytest.raises(
        PluginLoadError, match="Several installed packages register 'jsonl'"
    ) as caught:
        Trainer(
            model=RegressionModel(),
            args=_args(tmp_path / "run", report_to="jsonl"),
            train_dataset=RegressionDataset(),
        )
    assert sorted(caught.value.providers) == ["other-jsonl", "third-party-plugins"]
    assert sys.modules.get("other_jsonl") is None  # refused before importing either
