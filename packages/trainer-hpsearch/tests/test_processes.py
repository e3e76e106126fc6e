"""Searches under several processes, with threads standing in for the processes.

trainer-hpsearch is torch-free, so its own tests cannot form a torch process group: here
each thread is one "process" with a fake trainer whose ``runtime`` broadcasts through a
shared slot (pickled, as ``torch.distributed.broadcast_object_list`` does). The real
thing (2 gloo processes, the real Trainer) is ``integration_tests/
test_hp_search_multiprocess.py``.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_hpsearch import OptunaBackend, RayTuneBackend, SigOptBackend
from trainer_testing import LocalSigOptServer
from trainer_testing.search import FakeSearchArgs, FakeSearchTrainer, quadratic_loss

optuna = pytest.importorskip("optuna")


class ThreadRuntime:
    """The part of ``trainer_core.Runtime`` a search uses, for one of ``size`` threads."""

    def __init__(self, shared: SimpleNamespace, rank: int) -> None:
        self.shared, self.rank = shared, rank
        self.broadcasts = 0

    @property
    def num_processes(self) -> int:
        return self.shared.barrier.parties

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def broadcast_object(self, obj: Any, *, src: int = 0) -> Any:
        self.broadcasts += 1
        if self.rank == src:
            self.shared.slot = pickle.dumps(obj)
        self.shared.barrier.wait()
        value = pickle.loads(self.shared.slot)
        self.shared.barrier.wait()
        return value


def _space(trial: Any) -> dict[str, float]:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)}


def _in_threads(
    backend: Any, search: Callable[[FakeSearchTrainer], Any], size: int = 2, **options: Any
) -> tuple[list[Any], list[FakeSearchTrainer]]:
    """``search(trainer)`` on ``size`` threads; each result, or the exception it raised."""
    shared = SimpleNamespace(barrier=threading.Barrier(size, timeout=20), slot=None)
    trainers = []
    for rank in range(size):
        args = FakeSearchArgs(f"out-{rank}", world_size=size)
        trainer = FakeSearchTrainer(backend, args, hp_space=options.get("hp_space", _space))
        trainer.loss = options.get("loss", quadratic_loss)
        trainer.runtime = ThreadRuntime(shared, rank)  # type: ignore[attr-defined]  # as Trainer has
        trainers.append(trainer)
    results: list[Any] = [None] * size

    def work(rank: int) -> None:
        try:
            results[rank] = search(trainers[rank])
        except Exception as error:  # the test inspects it
            results[rank] = error

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, trainers


def _records(trainer: FakeSearchTrainer) -> list[tuple[str, dict[str, Any], list[int]]]:
    return [(t["id"], t["params"], t["steps"]) for t in trainer.trials]


def test_every_process_trains_the_main_process_trials_and_returns_its_best() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        sampler = optuna.samplers.RandomSampler(seed=0)
        return OptunaBackend().run(trainer, 4, "minimize", sampler=sampler)

    (best, copy), trainers = _in_threads(OptunaBackend(), search)
    assert best == copy and best.run_id in {"0", "1", "2", "3"}
    assert _records(trainers[0]) == _records(trainers[1])
    assert [t["id"] for t in trainers[1].trials] == ["0", "1", "2", "3"]
    alone = FakeSearchTrainer(OptunaBackend(), FakeSearchArgs("out"), hp_space=_space)
    assert search(alone) == best  # the same search as in one process
    assert _records(alone) == _records(trainers[0])


def test_pruning_is_decided_on_the_main_process_and_ends_the_trial_everywhere() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        pruner = optuna.pruners.ThresholdPruner(upper=1.5)
        sampler = optuna.samplers.RandomSampler(seed=0)
        return OptunaBackend().run(trainer, 5, "minimize", sampler=sampler, pruner=pruner)

    (best, copy), trainers = _in_threads(OptunaBackend(), search)
    assert best == copy
    steps = [t["steps"] for t in trainers[0].trials]
    assert [1] in steps and [1, 2, 3] in steps  # some pruned at their first evaluation
    assert _records(trainers[0]) == _records(trainers[1])
    assert trainers[0].callback_handler.calls == trainers[1].callback_handler.calls


def test_a_multi_objective_front_reaches_every_process() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        trainer.compute_objective = lambda m: [m["eval_loss"], -m["eval_loss"]]
        sampler = optuna.samplers.RandomSampler(seed=0)
        return OptunaBackend().run(trainer, 3, ["minimize", "minimize"], sampler=sampler)

    (front, copy), trainers = _in_threads(OptunaBackend(), search)
    assert isinstance(front, list) and front == copy
    assert all(len(t["steps"]) == 3 for t in trainers[1].trials)  # never pruned


def _diverges(params: dict[str, Any], step: int) -> float:
    if params["learning_rate"] > 0.05:
        raise ValueError("diverged")
    return quadratic_loss(params, step)


def test_a_failed_search_on_the_main_process_ends_it_on_the_others() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        if trainer.runtime.is_main_process:  # type: ignore[attr-defined]  # set by _in_threads
            trainer.loss = _diverges  # fails on the main process only
        sampler = optuna.samplers.RandomSampler(seed=0)
        return OptunaBackend().run(trainer, 6, "minimize", sampler=sampler)

    (main, other), trainers = _in_threads(OptunaBackend(), search)
    assert len(trainers[1].trials) == 2  # it trained the trial that failed on the main
    assert isinstance(main, ValueError)
    assert isinstance(other, RuntimeError)
    assert "failed on the main process (ValueError: diverged)" in str(other)


def test_errors_optuna_catches_end_the_trial_but_not_the_search_everywhere() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        sampler = optuna.samplers.RandomSampler(seed=0)
        return OptunaBackend().run(trainer, 6, "minimize", sampler=sampler, catch=ValueError)

    (best, copy), trainers = _in_threads(OptunaBackend(), search, loss=_diverges)
    assert best == copy and float(best.hyperparameters["learning_rate"]) <= 0.05
    assert len(trainers[0].trials) == len(trainers[1].trials) == 6


def test_trials_cannot_run_in_parallel_threads_under_several_processes() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        return OptunaBackend().run(trainer, 2, "minimize", n_jobs=2)

    results, _ = _in_threads(OptunaBackend(), search)
    assert all(isinstance(r, ValueError) and "n_jobs=2" in str(r) for r in results)


def test_a_trainer_without_a_runtime_cannot_search_on_several_processes(tmp_path) -> None:
    trainer = FakeSearchTrainer(OptunaBackend(), FakeSearchArgs(str(tmp_path), world_size=2))
    with pytest.raises(RuntimeError, match=r"2 processes needs the trainer's runtime"):
        OptunaBackend().run(trainer, 1, "minimize")


def test_one_process_never_broadcasts() -> None:
    def search(trainer: FakeSearchTrainer) -> Any:
        return OptunaBackend().run(trainer, 2, "minimize")

    _, (trainer,) = _in_threads(OptunaBackend(), search, size=1)
    assert len(trainer.trials) == 2 and trainer.runtime.broadcasts == 0  # type: ignore[attr-defined]


def test_ray_refuses_several_processes_and_says_why() -> None:
    trainer = FakeSearchTrainer(RayTuneBackend(), FakeSearchArgs("out", world_size=2))
    trainer.runtime = ThreadRuntime(SimpleNamespace(barrier=threading.Barrier(2)), 1)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="worker processes it starts itself"):
        RayTuneBackend().run(trainer, 1, "minimize")


def test_sigopt_runs_reach_every_process(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sigopt")
    space = [{"name": "learning_rate", "type": "double", "bounds": {"min": 1e-3, "max": 0.1}}]
    with LocalSigOptServer(projects=("huggingface",)) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.point_client()
        (best, copy), trainers = _in_threads(
            SigOptBackend(),
            lambda trainer: SigOptBackend().run(trainer, 3, "minimize"),
            hp_space=lambda _: space,
        )
    assert best == copy and best.run_id in server.runs
    assert len(server.runs) == 3  # one experiment: only the main process talks to SigOpt
    assert _records(trainers[0]) == _records(trainers[1])
    assert [t["id"] for t in trainers[1].trials] == list(server.runs)
