"""The contract suite of ``trainer_core.CheckpointStore`` (needs the ``torch`` extra).

Every store runs it, the default one and any passed as ``Trainer(checkpoint_store=...)``.
It checks what the training loop relies on, including what a store written from the
method signatures alone tends to miss: the folder each checkpoint is named by exists on
disk, ``save`` captures the content at that moment (the loop keeps training the same
objects), and only the methods the port names are used on the stand-ins the loop passes
(model and optimizer state go through the runtime, so the store never sees a real
optimizer when saving, nor a real module when loading).

Use it from pytest, one test per check::

    @pytest.mark.parametrize("check", CHECKPOINT_STORE_CHECKS, ids=lambda check: check.__name__)
    def test_store_contract(check, tmp_path):
        check(MyStore(), str(tmp_path))

or all at once with :func:`check_checkpoint_store_contract`. One process only: what
several processes do (``is_writer``, ``barrier``, ``sharded_writer``) needs a launch.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from trainer_core import CheckpointContent, CheckpointStore, LoadedCheckpoint, TrainerState
from trainer_testing.models import RegressionModel


class SavingOptimizer:
    """What the loop passes as ``content.optimizer`` when saving: the state it gathered
    beforehand, and nothing else."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


class LoadingModel:
    """What the loop passes as ``content.model`` when loading: the weights go through the
    runtime, so only ``parameters``, ``state_dict`` and ``load_state_dict`` exist."""

    def __init__(self, module: torch.nn.Module) -> None:
        self._module = module

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self._module.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self._module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any:
        return self._module.load_state_dict(dict(state), strict=strict)


class LoadingOptimizer:
    """What the loop passes as ``content.optimizer`` when loading."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self._optimizer = optimizer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state)


class _Training:
    """A model, optimizer, scheduler and state after one step: what a checkpoint holds."""

    def __init__(self, step: int = 3, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = RegressionModel()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: 1 / (s + 1))
        self.state = TrainerState(global_step=step, log_history=[{"loss": 1.5, "step": step}])
        self.step()

    def step(self) -> None:
        loss = self.model(torch.ones(4, 1), labels=torch.zeros(4))["loss"]
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()

    def content(self, **extra: Any) -> CheckpointContent:
        fields: dict[str, Any] = {
            "model": self.model,
            "optimizer": SavingOptimizer(self.optimizer.state_dict()),
            "scheduler": self.scheduler,
            "trainer_state": self.state,
        }
        return CheckpointContent(**{**fields, **extra})

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().clone() for name, value in self.model.state_dict().items()}


def _save(store: CheckpointStore, output_dir: str, step: int) -> str:
    return store.save(output_dir, step, _Training(step).content())


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_save_names_an_existing_checkpoint_folder(store: CheckpointStore, workdir: str) -> None:
    """``save`` returns ``<output_dir>/checkpoint-<step>``, a folder on disk, which
    ``checkpoints`` and ``latest`` then give back; an empty output folder has none."""
    output_dir = os.path.join(workdir, "out")
    _expect(store.latest(output_dir) is None, "latest() of a folder without checkpoints is None")
    path = _save(store, output_dir, 3)
    expected = os.path.join(output_dir, "checkpoint-3")
    _expect(path == expected, f"save() returned {path!r}, the loop expects {expected!r}")
    _expect(os.path.isdir(path), f"save() returned {path!r}, which is not a folder on disk")
    _expect(store.checkpoints(output_dir) == [path], "checkpoints() must list the saved one")
    _expect(store.latest(output_dir) == path, "latest() must be the saved checkpoint")
    _expect(not store.is_sharded(path), "a checkpoint saved without sharded_writer is not sharded")


def check_checkpoints_are_ordered_by_step(store: CheckpointStore, workdir: str) -> None:
    """Steps are numbers, not text: checkpoint-9 comes before checkpoint-10."""
    output_dir = os.path.join(workdir, "out")
    for step in (10, 9, 100):
        _save(store, output_dir, step)
    found = [os.path.basename(path) for path in store.checkpoints(output_dir)]
    expected = ["checkpoint-9", "checkpoint-10", "checkpoint-100"]
    _expect(found == expected, f"checkpoints() gave {found}, expected {expected}")
    _expect(store.latest(output_dir) == os.path.join(output_dir, "checkpoint-100"), "latest()")


def check_load_restores_what_save_captured(store: CheckpointStore, workdir: str) -> None:
    """What ``load`` restores is the content as it was when ``save`` was called, through
    the loop's stand-ins, and the trainer state comes back as a new object."""
    output_dir = os.path.join(workdir, "out")
    training = _Training(step=3)
    weights = training.weights()
    optimizer_state = copy.deepcopy(training.optimizer.state_dict())
    path = store.save(output_dir, 3, training.content())
    training.step()  # the loop goes on with the same objects
    training.state.global_step = 4
    training.state.log_history.append({"loss": 0.5, "step": 4})

    fresh = _Training(step=0, seed=1)
    content = CheckpointContent(
        model=LoadingModel(fresh.model),
        optimizer=LoadingOptimizer(fresh.optimizer),
        scheduler=fresh.scheduler,
    )
    loaded = store.load(path, content)
    _expect(isinstance(loaded, LoadedCheckpoint), "load() must return a LoadedCheckpoint")
    for name, value in fresh.model.state_dict().items():
        _expect(torch.equal(value, weights[name]), f"weight {name} is not the saved one")
    exp_avg = fresh.optimizer.state_dict()["state"][0]["exp_avg"]
    _expect(
        torch.equal(exp_avg, optimizer_state["state"][0]["exp_avg"]),
        "the optimizer state is not the one saved",
    )
    _expect(fresh.scheduler.last_epoch == 1, "the scheduler state is not the one saved")
    state = loaded.trainer_state
    _expect(isinstance(state, TrainerState), "load() must return the TrainerState saved")
    _expect(state is not training.state, "load() must return a TrainerState of its own")
    _expect(state.global_step == 3 and len(state.log_history) == 1, "the state is not as saved")


def check_given_state_dict_is_what_is_written(store: CheckpointStore, workdir: str) -> None:
    """``content.state_dict`` (the runtime's gathered weights) wins over ``model``'s own."""
    output_dir = os.path.join(workdir, "out")
    training = _Training()
    gathered = {name: value + 1.0 for name, value in training.weights().items()}
    path = store.save(output_dir, 1, training.content(state_dict=gathered))
    module = RegressionModel()
    store.load_model(path, LoadingModel(module))
    for name, value in module.state_dict().items():
        _expect(torch.equal(value, gathered[name]), f"weight {name} is not content.state_dict's")


def check_rng_states_come_back(store: CheckpointStore, workdir: str) -> None:
    """``rng_state`` holds each ``rng_extra`` entry under its key, and ``restore_rng``
    puts python's and torch's generators back where they were at ``save``."""
    output_dir = os.path.join(workdir, "out")
    sampler = {"seed": 5, "epoch": 2}
    path = store.save(output_dir, 1, _Training().content(rng_extra={"sampler": sampler}))
    draws = (random.random(), torch.rand(3))
    loaded = store.load(path, CheckpointContent())
    rng = loaded.rng_state
    _expect(rng is not None, "load() returned no rng_state for a checkpoint saved with one")
    _expect(rng.get("sampler") == sampler, f"rng_state['sampler'] is {rng.get('sampler')!r}")
    store.restore_rng(rng)
    again = (random.random(), torch.rand(3))
    _expect(draws[0] == again[0], "restore_rng() did not restore python's generator")
    _expect(torch.equal(draws[1], again[1]), "restore_rng() did not restore torch's generator")


def check_rotate_spares_keep_and_the_newest(store: CheckpointStore, workdir: str) -> None:
    """``rotate`` deletes the oldest beyond the limit, never one in ``keep`` nor the
    newest, and what it returns is gone from ``checkpoints``."""
    output_dir = os.path.join(workdir, "out")
    paths = [_save(store, output_dir, step) for step in (1, 2, 3, 4)]
    deleted = store.rotate(output_dir, 2)
    _expect(sorted(deleted) == sorted(paths[:2]), f"rotate(limit=2) deleted {deleted}")
    _expect(store.checkpoints(output_dir) == paths[2:], "rotate() left the wrong checkpoints")
    _expect(not any(os.path.exists(path) for path in deleted), "a deleted folder still exists")
    newest = _save(store, output_dir, 5)
    deleted = store.rotate(output_dir, 1, keep=[paths[2]])
    remaining = store.checkpoints(output_dir)
    _expect(paths[2] in remaining, "rotate() deleted a checkpoint named in keep")
    _expect(newest in remaining, "rotate() deleted the newest checkpoint")
    _expect(not set(deleted) & set(remaining), "rotate() returned a checkpoint it kept")


def check_a_failed_save_leaves_no_checkpoint(store: CheckpointStore, workdir: str) -> None:
    """An exception while saving propagates, and neither ``checkpoints`` nor ``latest``
    ever show the half-written checkpoint; the earlier one still loads."""
    output_dir = os.path.join(workdir, "out")
    earlier = _save(store, output_dir, 1)

    class BrokenScheduler:
        def state_dict(self) -> dict[str, Any]:
            raise RuntimeError("state_dict failed")

    content = _Training().content(scheduler=BrokenScheduler())
    try:
        store.save(output_dir, 2, content)
    except Exception:
        pass
    else:
        raise AssertionError("save() swallowed an exception raised by the content")
    _expect(store.checkpoints(output_dir) == [earlier], "a failed save left a checkpoint")
    _expect(store.latest(output_dir) == earlier, "latest() after a failed save")
    store.load(earlier, CheckpointContent(model=LoadingModel(RegressionModel())))


def check_missing_checkpoint_is_file_not_found(store: CheckpointStore, workdir: str) -> None:
    """Loading a checkpoint that does not exist raises ``FileNotFoundError``."""
    missing = os.path.join(workdir, "out", "checkpoint-99")
    try:
        store.load(missing, CheckpointContent(model=LoadingModel(RegressionModel())))
    except FileNotFoundError:
        return
    raise AssertionError("load() of a missing checkpoint must raise FileNotFoundError")


def check_optional_delete(store: CheckpointStore, workdir: str) -> None:
    """A store with the optional ``delete(checkpoint)`` removes exactly that checkpoint."""
    delete = getattr(store, "delete", None)
    if delete is None:
        return
    output_dir = os.path.join(workdir, "out")
    first, second = _save(store, output_dir, 1), _save(store, output_dir, 2)
    delete(first)
    _expect(store.checkpoints(output_dir) == [second], "delete() must remove that checkpoint")
    _expect(not os.path.exists(first), "delete() left the folder on disk")


CHECKPOINT_STORE_CHECKS: tuple[Callable[[CheckpointStore, str], None], ...] = (
    check_save_names_an_existing_checkpoint_folder,
    check_checkpoints_are_ordered_by_step,
    check_load_restores_what_save_captured,
    check_given_state_dict_is_what_is_written,
    check_rng_states_come_back,
    check_rotate_spares_keep_and_the_newest,
    check_a_failed_save_leaves_no_checkpoint,
    check_missing_checkpoint_is_file_not_found,
    check_optional_delete,
)
"""Each check takes a fresh store and an empty working folder."""


def check_checkpoint_store_contract(
    make_store: Callable[[], CheckpointStore], workdir: str
) -> None:
    """Run every check on a fresh store from ``make_store``, each in its own subfolder.

    Raises:
        AssertionError: naming the first broken part of the contract.
    """
    _expect(isinstance(make_store(), CheckpointStore), "the store lacks CheckpointStore's methods")
    for check in CHECKPOINT_STORE_CHECKS:
        folder = os.path.join(workdir, check.__name__)
        os.makedirs(folder)
        check(make_store(), folder)
